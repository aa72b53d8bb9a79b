"""SshPool against a real sshd: one connection per host, key authentication, errors and cleanup."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from glpibot.errors import RemoteError
from glpibot.redact import MASK, forget_secrets, redact
from glpibot.remote import SshPool
from tests.sshd import SshdHandle, free_port, write_private_key

pytestmark = pytest.mark.ssh


def paramiko_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if isinstance(thread, paramiko.Transport)}


@pytest.fixture
def clean_secrets() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


def test_pool_one_connection_per_host(sshd: SshdHandle) -> None:
    connections_before = sshd.connection_count()
    logins_before = sshd.accepted_count()
    with SshPool(sshd.config()) as pool:
        for number in range(5):
            result = pool.session("svc-auto").run(["echo", str(number)])
            assert result.stdout == f"{number}\n"
        assert pool.handshakes == 1
    assert sshd.connection_count() - connections_before == 1
    assert sshd.accepted_count() - logins_before == 1


def test_pool_same_session_returned(sshd: SshdHandle) -> None:
    with SshPool(sshd.config()) as pool:
        assert pool.session("svc-auto") is pool.session("svc-auto")


def test_pool_one_connection_each_host(sshd: SshdHandle) -> None:
    connections_before = sshd.connection_count()
    with SshPool(sshd.config(hosts=["web1", "web2"])) as pool:
        pool.session("web1").run(["true"])
        pool.session("web2").run(["true"])
        pool.session("web1").run(["true"])
        assert pool.handshakes == 2
    assert sshd.connection_count() - connections_before == 2


def test_pool_commands_and_stat_share_connection(sshd: SshdHandle) -> None:
    connections_before = sshd.connection_count()
    with SshPool(sshd.config()) as pool:
        session = pool.session("svc-auto")
        session.run(["true"])
        session.stat("/")
        session.run(["true"])
        session.stat("/tmp")
        assert pool.handshakes == 1
    assert sshd.connection_count() - connections_before == 1


def test_pool_close_leaves_no_thread(sshd: SshdHandle) -> None:
    before = paramiko_threads()
    pool = SshPool(sshd.config(hosts=["web1", "web2"]))
    pool.session("web1").run(["bigoutput", "--stdout", "1000000"])
    pool.session("web2").stat("/")
    pool.session("web2").run(["bigoutput", "--forever"], timeout_s=1)
    assert len(paramiko_threads() - before) == 2
    pool.close()
    assert [thread for thread in paramiko_threads() - before if thread.is_alive()] == []


def test_pool_close_idempotent(sshd: SshdHandle) -> None:
    pool = SshPool(sshd.config())
    pool.session("svc-auto")
    pool.close()
    pool.close()
    with pytest.raises(RemoteError, match="closed"):
        pool.session("svc-auto")


def test_pool_close_without_sessions(sshd: SshdHandle) -> None:
    pool = SshPool(sshd.config())
    pool.close()
    assert pool.handshakes == 0


def test_pool_reconnects_after_lost_connection(sshd: SshdHandle) -> None:
    with SshPool(sshd.config()) as pool:
        first = pool.session("svc-auto")
        transport = first.transport
        assert transport is not None
        transport.close()
        second = pool.session("svc-auto")
        assert second is not first
        assert second.run(["true"]).exit_status == 0
        assert pool.handshakes == 2


def test_pool_unknown_host_name(sshd: SshdHandle) -> None:
    with SshPool(sshd.config()) as pool, pytest.raises(RemoteError, match="db9"):
        pool.session("db9")


def test_pool_uses_client_factory(sshd: SshdHandle) -> None:
    created_clients: list[paramiko.SSHClient] = []

    def factory() -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        created_clients.append(client)
        return client

    with SshPool(sshd.config(), client_factory=factory) as pool:
        pool.session("svc-auto").run(["true"])
    assert len(created_clients) == 1


def test_pool_wrong_client_key(sshd: SshdHandle, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger_ed25519"
    write_private_key(stranger)
    with SshPool(sshd.config(hosts={"svc-auto": {"key_file": str(stranger)}})) as pool:
        with pytest.raises(RemoteError) as raised:
            pool.session("svc-auto")
    message = str(raised.value)
    assert f"key authentication as {sshd.user}" in message
    assert str(stranger) in message
    assert "authorized_keys" in message


def test_pool_refused_port(sshd: SshdHandle) -> None:
    port = free_port()
    started = time.monotonic()
    with SshPool(sshd.config(hosts={"svc-auto": {"port": port}})) as pool:
        with pytest.raises(RemoteError) as raised:
            pool.session("svc-auto")
        assert pool.handshakes == 0
    message = str(raised.value)
    assert "svc-auto" in message
    assert "127.0.0.1" in message
    assert str(port) in message
    assert "refused" in message
    assert time.monotonic() - started < 30  # detects a hang, not a speed requirement


def test_pool_missing_key_file(sshd: SshdHandle, tmp_path: Path) -> None:
    missing = tmp_path / "no_key"
    with SshPool(sshd.config(hosts={"svc-auto": {"key_file": str(missing)}})) as pool:
        with pytest.raises(RemoteError, match="missing") as raised:
            pool.session("svc-auto")
    assert str(missing) in str(raised.value)


def test_pool_key_from_credentials_dir(sshd: SshdHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "ssh-key").write_bytes(sshd.client_key_path.read_bytes())
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    with SshPool(sshd.config(hosts={"svc-auto": {"key_file": None}})) as pool:
        assert pool.session("svc-auto").run(["true"]).exit_status == 0


def test_pool_no_key_anywhere(sshd: SshdHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = sshd.config(hosts={"svc-auto": {"key_file": None}})
    with SshPool(config) as pool, pytest.raises(RemoteError, match="CREDENTIALS_DIRECTORY"):
        pool.session("svc-auto")


def encrypted_client_key(sshd: SshdHandle, tmp_path: Path, passphrase: str) -> Path:
    """Write a passphrase-protected key and authorize it on the server for this test."""
    path = tmp_path / "encrypted_ed25519"
    sshd.authorize_key(write_private_key(path, passphrase=passphrase))
    return path


def test_pool_encrypted_key_with_passphrase(
    sshd: SshdHandle, tmp_path: Path, clean_secrets: None, caplog: pytest.LogCaptureFixture
) -> None:
    passphrase = "correct horse battery staple"
    path = encrypted_client_key(sshd, tmp_path, passphrase)
    with caplog.at_level(logging.DEBUG):
        with SshPool(sshd.config(hosts={"svc-auto": {"key_file": str(path)}}), key_passphrase=passphrase) as pool:
            assert pool.session("svc-auto").run(["true"]).exit_status == 0
    assert redact(passphrase) == MASK
    assert passphrase not in caplog.text


def test_pool_encrypted_key_without_passphrase(sshd: SshdHandle, tmp_path: Path) -> None:
    path = encrypted_client_key(sshd, tmp_path, "s3cret-passphrase")
    with SshPool(sshd.config(hosts={"svc-auto": {"key_file": str(path)}})) as pool:
        with pytest.raises(RemoteError) as raised:
            pool.session("svc-auto")
    assert "GLPIBOT_SSH_KEY_PASSPHRASE" in str(raised.value)
    assert str(path) in str(raised.value)


def test_pool_encrypted_key_wrong_passphrase(sshd: SshdHandle, tmp_path: Path, clean_secrets: None) -> None:
    path = encrypted_client_key(sshd, tmp_path, "s3cret-passphrase")
    config = sshd.config(hosts={"svc-auto": {"key_file": str(path)}})
    with SshPool(config, key_passphrase="wrong-passphrase") as pool:
        with pytest.raises(RemoteError) as raised:
            pool.session("svc-auto")
    assert str(path) in str(raised.value)
    assert "wrong-passphrase" not in str(raised.value)


def test_pool_passphrase_with_plain_key(sshd: SshdHandle, clean_secrets: None) -> None:
    # One passphrase setting serves every host; a host whose key is not encrypted still connects.
    with SshPool(sshd.config(), key_passphrase="unused-passphrase") as pool:
        assert pool.session("svc-auto").run(["true"]).exit_status == 0
