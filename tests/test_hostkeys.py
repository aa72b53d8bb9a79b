"""Strict host key checking against a real sshd: unknown, changed, hashed and port-qualified entries."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from pathlib import Path

import paramiko
import pytest

from glpibot.errors import HostKeyError, RemoteError
from glpibot.remote import SshPool
from glpibot.remote.hostkeys import fingerprint, known_hosts_name
from tests.sshd import SshdHandle, hosts_line, write_private_key

pytestmark = pytest.mark.ssh


def connect(sshd: SshdHandle, known_hosts: Path) -> SshPool:
    """Return a pool whose one host svc-auto uses `known_hosts`, after connecting it."""
    pool = SshPool(sshd.config(hosts={"svc-auto": {"known_hosts": str(known_hosts)}}))
    try:
        pool.session("svc-auto")
    except BaseException:
        pool.close()
        raise
    return pool


def paramiko_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if isinstance(thread, paramiko.Transport)}


def test_fingerprint_matches_ssh_keygen(sshd: SshdHandle, tmp_path: Path) -> None:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed")
    public = tmp_path / "key.pub"
    key = sshd.host_key()
    public.write_text(f"{key.get_name()} {key.get_base64()}\n")
    listed = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(public)], capture_output=True, text=True)
    assert listed.returncode == 0
    assert listed.stdout.split()[1] == fingerprint(key)


def test_fingerprint_form(sshd: SshdHandle) -> None:
    assert re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}", fingerprint(sshd.host_key()))


def test_known_hosts_name() -> None:
    assert known_hosts_name("web1.example.org", 22) == "web1.example.org"
    assert known_hosts_name("127.0.0.1", 2222) == "[127.0.0.1]:2222"


def test_port_entry_accepted(sshd: SshdHandle) -> None:
    with connect(sshd, sshd.known_hosts) as pool:
        assert pool.session("svc-auto").run(["true"]).exit_status == 0


def test_hashed_entry_accepted(sshd: SshdHandle) -> None:
    hashed = sshd.known_hosts_hashed()
    assert hashed.read_text().startswith("|1|")
    with connect(sshd, hashed) as pool:
        assert pool.session("svc-auto").run(["true"]).exit_status == 0


def test_ecdsa_entry_accepted(sshd: SshdHandle) -> None:
    # The server also has an Ed25519 key, so the client must request the key type that known_hosts lists.
    path = sshd.write_known_hosts(hosts_line(f"[127.0.0.1]:{sshd.port}", sshd.host_key("ecdsa")))
    with connect(sshd, path) as pool:
        assert pool.session("svc-auto").run(["true"]).exit_status == 0


def test_other_names_ignored(sshd: SshdHandle) -> None:
    other_host = hosts_line("[127.0.0.2]:22", sshd.host_key("ecdsa"))
    text = other_host + hosts_line(f"[127.0.0.1]:{sshd.port}", sshd.host_key())
    with connect(sshd, sshd.write_known_hosts(text)) as pool:
        assert pool.session("svc-auto").run(["true"]).exit_status == 0


def test_unknown_host_rejected(sshd: SshdHandle) -> None:
    empty = sshd.write_known_hosts("")
    with pytest.raises(HostKeyError) as raised:
        connect(sshd, empty)
    message = str(raised.value)
    assert fingerprint(sshd.host_key()) in message
    assert str(empty) in message
    assert f"[127.0.0.1]:{sshd.port}" in message
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {empty}" in message
    assert "verify the fingerprint" in message


def test_unknown_host_file_unchanged(sshd: SshdHandle) -> None:
    comment_only = sshd.write_known_hosts("# operator notes\n")
    before = comment_only.read_bytes()
    with pytest.raises(HostKeyError):
        connect(sshd, comment_only)
    assert comment_only.read_bytes() == before


def test_unknown_host_ignores_home_known_hosts(
    sshd: SshdHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text(hosts_line(f"[127.0.0.1]:{sshd.port}", sshd.host_key()))
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(HostKeyError):
        connect(sshd, sshd.write_known_hosts(""))


def test_plain_address_rejected_for_other_port(sshd: SshdHandle) -> None:
    # A "127.0.0.1" entry is for port 22 only; this server listens on another port.
    plain = sshd.write_known_hosts(hosts_line("127.0.0.1", sshd.host_key()))
    with pytest.raises(HostKeyError) as raised:
        connect(sshd, plain)
    assert "unknown" in str(raised.value)


def test_changed_key_rejected(sshd: SshdHandle, tmp_path: Path) -> None:
    impostor = write_private_key(tmp_path / "other_host_key")
    path = sshd.write_known_hosts(hosts_line(f"[127.0.0.1]:{sshd.port}", impostor))
    before = path.read_bytes()
    with pytest.raises(HostKeyError) as raised:
        connect(sshd, path)
    message = str(raised.value)
    assert "possible man-in-the-middle" in message
    assert fingerprint(sshd.host_key()) in message
    assert fingerprint(impostor) in message
    assert str(path) in message
    assert path.read_bytes() == before


def test_changed_key_type_rejected(sshd: SshdHandle, tmp_path: Path) -> None:
    # The entry contains a key of a type the server also has, but not the server's key of that type.
    impostor = write_private_key(tmp_path / "other_ecdsa_key", "ecdsa")
    path = sshd.write_known_hosts(hosts_line(f"[127.0.0.1]:{sshd.port}", impostor))
    with pytest.raises(HostKeyError) as raised:
        connect(sshd, path)
    assert fingerprint(impostor) in str(raised.value)
    assert "possible man-in-the-middle" in str(raised.value)


def test_missing_known_hosts_file(sshd: SshdHandle, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_known_hosts"
    connections_before = sshd.connection_count()
    with pytest.raises(RemoteError) as raised:
        connect(sshd, missing)
    assert str(missing) in str(raised.value)
    assert "missing" in str(raised.value)
    assert not missing.exists()
    assert sshd.connection_count() == connections_before


def test_rejected_key_leaves_no_thread(sshd: SshdHandle) -> None:
    before = paramiko_threads()
    with pytest.raises(HostKeyError):
        connect(sshd, sshd.write_known_hosts(""))
    assert [thread for thread in paramiko_threads() - before if thread.is_alive()] == []


def test_rejected_key_counts_handshake(sshd: SshdHandle) -> None:
    pool = SshPool(sshd.config(hosts={"svc-auto": {"known_hosts": str(sshd.write_known_hosts(""))}}))
    with pool, pytest.raises(HostKeyError):
        pool.session("svc-auto")
    assert pool.handshakes == 1



def test_corrupt_known_hosts_line(sshd: SshdHandle) -> None:
    path = sshd.write_known_hosts(f"# first\n[127.0.0.1]:{sshd.port} ssh-ed25519 !!!notbase64\n")
    with pytest.raises(RemoteError) as raised:
        connect(sshd, path)
    assert str(path) in str(raised.value)
    assert "invalid key on line 2" in str(raised.value)


def test_binary_known_hosts_file(sshd: SshdHandle) -> None:
    path = sshd.test_dir / "known_hosts.binary"
    path.write_bytes(b"\xff\xfe\x00binary\n")
    with pytest.raises(RemoteError, match="not a UTF-8 text file"):
        connect(sshd, path)


def test_marker_and_short_lines_skipped(sshd: SshdHandle, tmp_path: Path) -> None:
    # OpenSSH files may hold CA lines, keys of unknown types and stray text; the host entry still works.
    ca = write_private_key(tmp_path / "ca_key")
    text = (
        "not-a-host-key-line\n"
        + "@cert-authority " + hosts_line("*.example.org", ca)
        + f"[127.0.0.1]:{sshd.port} ssh-unknown-type AAAA\n"
        + hosts_line(f"[127.0.0.1]:{sshd.port}", sshd.host_key())
    )
    with connect(sshd, sshd.write_known_hosts(text)) as pool:
        assert pool.session("svc-auto").run(["true"]).exit_status == 0


def test_revoked_key_rejected(sshd: SshdHandle) -> None:
    listed = hosts_line(f"[127.0.0.1]:{sshd.port}", sshd.host_key())
    path = sshd.write_known_hosts(listed + "@revoked " + hosts_line("*", sshd.host_key()))
    before = paramiko_threads()
    with pytest.raises(HostKeyError) as raised:
        connect(sshd, path)
    assert "@revoked" in str(raised.value)
    assert fingerprint(sshd.host_key()) in str(raised.value)
    assert [thread for thread in paramiko_threads() - before if thread.is_alive()] == []


def test_revoked_other_key_ignored(sshd: SshdHandle, tmp_path: Path) -> None:
    old_key = write_private_key(tmp_path / "old_host_key")
    listed = hosts_line(f"[127.0.0.1]:{sshd.port}", sshd.host_key())
    path = sshd.write_known_hosts("@revoked " + hosts_line("*", old_key) + listed)
    with connect(sshd, path) as pool:
        assert pool.session("svc-auto").run(["true"]).exit_status == 0
