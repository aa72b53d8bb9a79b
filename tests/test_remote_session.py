"""RemoteSession against a real sshd: large outputs, time limits, argument quoting, sudo and SFTP stat."""

from __future__ import annotations

import logging
import os
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from glpibot.errors import RemoteError
from glpibot.remote import SshPool, sudo_refusal
from glpibot.remote.capture import DEFAULT_CAP_BYTES, StreamCapture, format_size
from glpibot.remote.session import command_line
from tests.sshd import SshdHandle

MiB = 1024 * 1024
KiB = 1024

RECORD_ARGS = """#!/usr/bin/env python3
import json, os, sys
state = os.environ["GLPIBOT_STANDIN_STATE"]
with open(os.path.join(state, "calls.log"), "a", encoding="utf-8") as log:
    log.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\\n")
print("recorded")
"""


def expected_stream(name: str, size: int) -> bytes:
    """Rebuild what bigoutput writes: 100-byte lines "NAME line NNNNNNNN xxx...", cut to `size` bytes."""
    lines = []
    total = 0
    number = 0
    while total < size:
        line = f"{name} line {number:08d} ".encode().ljust(99, b"x") + b"\n"
        lines.append(line)
        total += len(line)
        number += 1
    return b"".join(lines)[:size]


def expected_capture(data: bytes, cap: int = DEFAULT_CAP_BYTES) -> str:
    """Return the text a capped capture of `data` must hold (ASCII data, cut in mid-line)."""
    half = cap // 2
    total = format_size(len(data))
    marker = f"[output cut: {total} total, first {format_size(half)} and last {format_size(half)} shown]"
    return data[:half].decode() + "\n" + marker + "\n" + data[-half:].decode()


@pytest.fixture
def pool(sshd: SshdHandle) -> Iterator[SshPool]:
    with SshPool(sshd.config()) as ssh_pool:
        yield ssh_pool


# --- capture, without a server ---


def test_capture_small_stream_kept_whole() -> None:
    capture = StreamCapture(cap_bytes=100)
    capture.feed(b"hello ")
    capture.feed(b"world\n")
    assert capture.text() == "hello world\n"
    assert capture.total_bytes == 12
    assert not capture.truncated


def test_capture_exact_cap_not_truncated() -> None:
    capture = StreamCapture(cap_bytes=10)
    capture.feed(b"0123456789")
    assert capture.text() == "0123456789"
    assert not capture.truncated


def test_capture_keeps_head_and_tail() -> None:
    capture = StreamCapture(cap_bytes=10)
    for piece in (b"abc", b"defgh", b"ijklmnop", b"qrstuvwxyz"):
        capture.feed(piece)
    assert capture.total_bytes == 26
    assert capture.truncated
    assert capture.text() == "abcde\n[output cut: 26 bytes total, first 5 bytes and last 5 bytes shown]\nvwxyz"


def test_capture_memory_bounded_by_cap() -> None:
    capture = StreamCapture(cap_bytes=64 * KiB)
    chunk = b"y" * 32 * KiB
    for _ in range(256):
        capture.feed(chunk)
    assert capture.total_bytes == 8 * MiB
    assert len(capture._head) + len(capture._tail) == 64 * KiB


def test_capture_cut_utf8_sequence_dropped() -> None:
    capture = StreamCapture(cap_bytes=8)
    capture.feed("aaé".encode() + b"b" * 20 + "éz".encode())  # é is 2 bytes; the cuts split both
    text = capture.text()
    assert "\ufffd" not in text
    assert text.startswith("aaé")
    assert text.endswith("éz")


def test_capture_invalid_utf8_replaced() -> None:
    capture = StreamCapture(cap_bytes=100)
    capture.feed(b"ok \xff\xfe end")
    assert capture.text() == "ok \ufffd\ufffd end"


def test_capture_tiny_cap_rejected() -> None:
    with pytest.raises(ValueError):
        StreamCapture(cap_bytes=1)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 bytes"),
        (1023, "1023 bytes"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (4 * MiB, "4.0 MiB"),
        (1024**3, "1.0 GiB"),
    ],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


# --- sudo messages and the command line, without a server ---


@pytest.mark.parametrize(
    ("stderr", "reason"),
    [
        ("sudo: a password is required\n", "password"),
        (
            "sudo: a terminal is required to read the password; either use the -S option to read from "
            "standard input or configure an askpass helper\nsudo: a password is required\n",
            "password",
        ),
        ("sudo: no tty present and no askpass program specified\n", "password"),
        ("sudo: sorry, you must have a tty to run sudo\n", "tty"),
        ("Sorry, user svc is not allowed to execute '/usr/bin/systemctl restart x' as root on web1.\n", "not-allowed"),
        ("svc is not in the sudoers file.  This incident will be reported.\n", "not-allowed"),
        ("", None),
        ("Job for nginx.service failed because the control process exited with error code.\n", None),
        ("the log says: sudo: a password is required\n", None),
    ],
)
def test_sudo_refusal(stderr: str, reason: str | None) -> None:
    assert sudo_refusal(stderr) == reason


def test_command_line_quotes_each_argument() -> None:
    assert command_line(["systemctl", "status", "my unit"], sudo=False) == "systemctl status 'my unit'"


def test_command_line_sudo_prefix() -> None:
    assert command_line(["systemctl", "status", "x"], sudo=True) == "sudo -n systemctl status x"


def test_command_line_nul_rejected() -> None:
    with pytest.raises(ValueError):
        command_line(["echo", "a\x00b"], sudo=False)


def test_command_line_empty_rejected() -> None:
    with pytest.raises(RemoteError):
        command_line([], sudo=False)


# --- commands on the real sshd ---

@pytest.mark.ssh
def test_run_small_command(pool: SshPool) -> None:
    result = pool.session("svc-auto").run(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert result.exit_status == 7
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert result.stdout_total_bytes == 4
    assert result.timed_out is False
    assert result.command_line == "sh -c 'echo out; echo err >&2; exit 7'"
    assert result.argv == ["sh", "-c", "echo out; echo err >&2; exit 7"]


@pytest.mark.ssh
def test_run_stdin_closed(pool: SshPool) -> None:
    result = pool.session("svc-auto").run(["cat"], timeout_s=10)
    assert result.timed_out is False
    assert result.exit_status == 0
    assert result.stdout == ""


@pytest.mark.ssh
def test_run_four_mib_stdout(pool: SshPool) -> None:
    result = pool.session("svc-auto").run(["bigoutput", "--stdout", str(4 * MiB)])
    data = expected_stream("stdout", 4 * MiB)
    assert result.exit_status == 0
    assert result.timed_out is False
    assert result.stdout_total_bytes == 4 * MiB
    assert result.stdout_truncated is True
    assert result.stderr_total_bytes == 0
    assert result.stderr_truncated is False
    assert result.stdout == expected_capture(data)
    assert "[output cut: 4.0 MiB total, first 128 KiB and last 128 KiB shown]" in result.stdout


@pytest.mark.ssh
def test_run_both_streams_interleaved(pool: SshPool) -> None:
    argv = ["bigoutput", "--stdout", str(4 * MiB), "--stderr", str(3 * MiB)]
    argv += ["--interleave", str(64 * KiB), "--exit", "3"]
    result = pool.session("svc-auto").run(argv)
    assert result.exit_status == 3
    assert result.timed_out is False
    assert result.stdout_total_bytes == 4 * MiB
    assert result.stderr_total_bytes == 3 * MiB
    assert result.stdout_truncated is True
    assert result.stderr_truncated is True
    assert result.stdout == expected_capture(expected_stream("stdout", 4 * MiB))
    assert result.stderr == expected_capture(expected_stream("stderr", 3 * MiB))


@pytest.mark.ssh
def test_run_stderr_before_stdout(pool: SshPool) -> None:
    argv = ["bigoutput", "--stderr", str(2621440), "--stdout", "10", "--stderr-first", "--exit", "1"]
    result = pool.session("svc-auto").run(argv)
    assert result.exit_status == 1
    assert result.stdout == "stdout lin"
    assert result.stdout_total_bytes == 10
    assert result.stdout_truncated is False
    assert result.stderr_total_bytes == 2621440
    assert result.stderr_truncated is True
    assert result.stderr == expected_capture(expected_stream("stderr", 2621440))


@pytest.mark.ssh
def test_run_captured_text_within_cap(pool: SshPool) -> None:
    result = pool.session("svc-auto").run(["bigoutput", "--stdout", str(3 * MiB), "--stderr", str(3 * MiB)])
    marker_line_bytes = 100
    assert len(result.stdout.encode()) <= DEFAULT_CAP_BYTES + marker_line_bytes
    assert len(result.stderr.encode()) <= DEFAULT_CAP_BYTES + marker_line_bytes


@pytest.mark.ssh
@pytest.mark.slow
def test_run_memory_bounded(pool: SshPool) -> None:
    session = pool.session("svc-auto")
    tracemalloc.start()
    try:
        argv = ["bigoutput", "--stdout", str(16 * MiB), "--stderr", str(8 * MiB), "--interleave", str(MiB)]
        result = session.run(argv)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.stdout_total_bytes == 16 * MiB
    assert result.stderr_total_bytes == 8 * MiB
    # paramiko buffers at most one SSH window (2 MiB) per channel; keeping the 24 MiB would exceed this
    assert peak < 8 * MiB


@pytest.mark.ssh
def test_run_never_ending_times_out(sshd: SshdHandle, pool: SshPool) -> None:
    session = pool.session("svc-auto")
    started = time.monotonic()
    result = session.run(["bigoutput", "--forever", "--line-interval", "0.5"], timeout_s=2)
    elapsed = time.monotonic() - started
    assert result.timed_out is True
    assert result.exit_status is None
    assert result.stdout.startswith("stdout line 00000000 ")
    assert elapsed < 20  # detects a hang, not a speed requirement

    # The channel is closed, so the writer dies on its next write.
    pid = int((sshd.state_dir / "bigoutput.pid").read_text())
    gone_by = time.monotonic() + 15
    while Path(f"/proc/{pid}").exists() and time.monotonic() < gone_by:
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists()

    # The connection still serves the next command.
    assert session.run(["true"]).exit_status == 0


@pytest.mark.ssh
def test_run_host_timeout_default(sshd: SshdHandle) -> None:
    config = sshd.config(hosts={"slow": {"command_timeout_s": 1}})
    with SshPool(config) as ssh_pool:
        result = ssh_pool.session("slow").run(["sleep", "30"])
    assert result.timed_out is True
    assert result.exit_status is None


@pytest.mark.ssh
def test_run_killed_by_signal(pool: SshPool) -> None:
    result = pool.session("svc-auto").run(["sh", "-c", "echo before; kill -KILL $$"])
    assert result.exit_status is None
    assert result.timed_out is False
    assert result.stdout == "before\n"


ODD_ARGUMENTS = [
    "with space",
    "single'quote",
    'double"quote',
    "$(id)",
    "`id`",
    "a;b",
    "a|b",
    "a&&b",
    "line1\nline2",
    "-leading-dash",
    "--",
    "ünïcödé ✓ 日本語",
    "",
    "*",
    "~",
    "$HOME",
    "back\\slash",
    "tab\there",
    "'",
    '"',
]


@pytest.mark.ssh
def test_run_arguments_reach_command_verbatim(sshd: SshdHandle, pool: SshPool) -> None:
    sshd.add_standin("record-args", RECORD_ARGS)
    marker = sshd.state_dir / "injected"
    arguments = [*ODD_ARGUMENTS, f"; touch {marker}", f"$(touch {marker})"]
    result = pool.session("svc-auto").run(["record-args", *arguments])
    assert result.exit_status == 0
    assert sshd.calls() == [["record-args", *arguments]]
    assert not marker.exists()


@pytest.mark.ssh
def test_run_nul_argument_not_sent(sshd: SshdHandle, pool: SshPool) -> None:
    sshd.add_standin("record-args", RECORD_ARGS)
    session = pool.session("svc-auto")
    with pytest.raises(ValueError) as raised:
        session.run(["record-args", "a\x00b"])
    assert isinstance(raised.value, RemoteError)
    assert sshd.calls() == []


@pytest.mark.ssh
def test_run_sudo_from_host_setting(sshd: SshdHandle) -> None:
    sshd.add_standin("record-args", RECORD_ARGS)
    with SshPool(sshd.config(hosts={"svc-auto": {"sudo": True}})) as ssh_pool:
        result = ssh_pool.session("svc-auto").run(["record-args", "status", "x y"])
    assert result.exit_status == 0
    assert result.command_line == "sudo -n record-args status 'x y'"
    assert sshd.calls() == [["sudo", "-n", "record-args", "status", "x y"], ["record-args", "status", "x y"]]


@pytest.mark.ssh
def test_run_sudo_argument_overrides_host(sshd: SshdHandle) -> None:
    sshd.add_standin("record-args", RECORD_ARGS)
    with SshPool(sshd.config(hosts={"svc-auto": {"sudo": True}})) as ssh_pool:
        result = ssh_pool.session("svc-auto").run(["record-args", "plain"], sudo=False)
    assert result.command_line == "record-args plain"
    assert sshd.calls() == [["record-args", "plain"]]


@pytest.mark.ssh
def test_run_sudo_argument_on(sshd: SshdHandle, pool: SshPool) -> None:
    sshd.add_standin("record-args", RECORD_ARGS)
    pool.session("svc-auto").run(["record-args"], sudo=True)
    calls = sshd.calls()
    assert calls[0][0] == "sudo"
    assert calls[0][1] == "-n"


@pytest.mark.ssh
@pytest.mark.parametrize(
    ("mode", "message"),
    [("password", "sudo: a password is required"), ("tty", "sudo: sorry, you must have a tty to run sudo")],
)
def test_run_sudo_refused(sshd: SshdHandle, pool: SshPool, mode: str, message: str) -> None:
    sshd.add_standin("record-args", RECORD_ARGS)
    sshd.set_scenario("sudo-mode", mode)
    result = pool.session("svc-auto").run(["record-args", "restart"], sudo=True)
    assert result.exit_status == 1
    assert message in result.stderr
    assert sudo_refusal(result.stderr) == mode
    assert sshd.calls() == [["sudo", "-n", "record-args", "restart"]]


@pytest.mark.ssh
def test_run_logs_command_and_result(pool: SshPool, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="glpibot.remote"):
        pool.session("svc-auto").run(["sh", "-c", "exit 4"])
    debug = [record.getMessage() for record in caplog.records if record.levelno == logging.DEBUG]
    info = [record.getMessage() for record in caplog.records if record.levelno == logging.INFO]
    assert any("sh -c 'exit 4'" in message for message in debug)
    assert any("svc-auto" in message and "exit status 4" in message for message in info)


@pytest.mark.ssh
def test_run_after_close_fails(sshd: SshdHandle) -> None:
    ssh_pool = SshPool(sshd.config())
    session = ssh_pool.session("svc-auto")
    ssh_pool.close()
    with pytest.raises(RemoteError):
        session.run(["true"])


# --- SFTP stat on the real sshd (the server runs on this machine, so local files are remote files) ---


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "file.txt").write_bytes(b"12345")
    (root / "file.txt").chmod(0o640)
    os.utime(root / "file.txt", (1714564800, 1714564800))  # 2024-05-01T12:00:00Z
    (root / "dir").mkdir()
    (root / "link").symlink_to(root / "file.txt")
    (root / "dangling").symlink_to(root / "nowhere")
    (root / "with space.conf").write_text("x")
    return root


@pytest.mark.ssh
def test_stat_file(pool: SshPool, tree: Path) -> None:
    found = pool.session("svc-auto").stat(str(tree / "file.txt"))
    assert found is not None
    assert found.kind == "file"
    assert found.size == 5
    assert found.mode == "0640"
    assert found.uid == os.getuid()
    assert found.gid == os.getgid()
    assert found.mtime == "2024-05-01T12:00:00Z"
    assert found.path == str(tree / "file.txt")


@pytest.mark.ssh
def test_stat_directory(pool: SshPool, tree: Path) -> None:
    found = pool.session("svc-auto").stat(str(tree / "dir"))
    assert found is not None
    assert found.kind == "directory"


@pytest.mark.ssh
def test_stat_symlink_not_followed(pool: SshPool, tree: Path) -> None:
    session = pool.session("svc-auto")
    link = session.stat(str(tree / "link"))
    dangling = session.stat(str(tree / "dangling"))
    assert link is not None
    assert link.kind == "symlink"
    assert dangling is not None
    assert dangling.kind == "symlink"


@pytest.mark.ssh
def test_stat_missing_path(pool: SshPool, tree: Path) -> None:
    assert pool.session("svc-auto").stat(str(tree / "missing")) is None


@pytest.mark.ssh
def test_stat_path_with_space(pool: SshPool, tree: Path) -> None:
    found = pool.session("svc-auto").stat(str(tree / "with space.conf"))
    assert found is not None
    assert found.kind == "file"


@pytest.mark.ssh
def test_stat_nul_rejected(pool: SshPool) -> None:
    with pytest.raises(ValueError):
        pool.session("svc-auto").stat("/tmp/a\x00b")


@pytest.mark.ssh
def test_stat_reuses_sftp_channel(pool: SshPool, tree: Path) -> None:
    session = pool.session("svc-auto")
    session.stat(str(tree / "file.txt"))
    first = session._sftp
    session.stat(str(tree / "dir"))
    assert first is not None
    assert session._sftp is first


@pytest.mark.ssh
@pytest.mark.skipif(os.geteuid() == 0, reason="root may read every directory, so permission denied cannot happen")
def test_stat_permission_denied(pool: SshPool, tree: Path) -> None:
    locked = tree / "locked"
    locked.mkdir()
    (locked / "inner").write_text("x")
    locked.chmod(0)
    try:
        with pytest.raises(RemoteError, match="permission denied"):
            pool.session("svc-auto").stat(str(locked / "inner"))
    finally:
        locked.chmod(0o755)
