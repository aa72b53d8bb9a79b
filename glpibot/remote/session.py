"""One host's connection: run a command (never a pty) and stat a path over SFTP."""

from __future__ import annotations

import errno
import logging
import select
import shlex
import stat as stat_module
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import paramiko

from glpibot.config import HostSettings
from glpibot.errors import RemoteError
from glpibot.remote.capture import DEFAULT_CAP_BYTES, StreamCapture

logger = logging.getLogger(__name__)

_READ_CHUNK = 64 * 1024
_POLL_INTERVAL_S = 0.2  # maximum wait between checks of the deadline and the exit status


@dataclass
class CommandResult:
    """Result of one remote command. Sizes are in bytes, and `stdout`/`stderr` are capped UTF-8 text."""

    argv: list[str]
    exit_status: int | None  # None when the command timed out or ended without a status
    stdout: str
    stderr: str
    stdout_total_bytes: int
    stderr_total_bytes: int
    stdout_truncated: bool
    stderr_truncated: bool
    timed_out: bool
    duration_s: float
    command_line: str  # the exact line sent: shlex.join form, with "sudo -n" in front when used


@dataclass
class RemoteStat:
    """Attributes of one remote path, from lstat."""

    path: str
    kind: str  # "file", "directory", "symlink" or "other"
    size: int  # bytes
    mode: str  # permission bits in octal, e.g. "0644"
    uid: int
    gid: int
    mtime: str  # ISO 8601 in UTC, e.g. "2024-05-01T12:00:00Z"


class RemoteArgumentError(RemoteError, ValueError):
    """An argument cannot be sent as a remote command argument (a NUL byte, an empty argv)."""


def command_line(argv: list[str], *, sudo: bool) -> str:
    """Return the shell-quoted line for argv, with `sudo -n` in front when sudo is set.

    The remote login shell parses the line, so every argument is quoted and
    reaches the command as one word, byte for byte. A NUL byte cannot be
    part of an argument at all, so argv holding one is rejected.
    """
    if not argv:
        raise RemoteArgumentError("cannot run an empty command")
    for argument in argv:
        if not isinstance(argument, str):
            raise RemoteArgumentError(f"command argument {argument!r} is not a string")
        if "\x00" in argument:
            raise RemoteArgumentError(f"command argument {argument!r} contains a NUL byte")
    return shlex.join(["sudo", "-n", *argv] if sudo else argv)


def _iso_utc(timestamp: int | float | None) -> str:
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _kind(mode: int) -> str:
    if stat_module.S_ISLNK(mode):
        return "symlink"
    if stat_module.S_ISDIR(mode):
        return "directory"
    if stat_module.S_ISREG(mode):
        return "file"
    return "other"


class RemoteSession:
    """Commands and SFTP on one connected host. SshPool creates and closes it."""

    def __init__(self, host: HostSettings, client: paramiko.SSHClient, *, cap_bytes: int = DEFAULT_CAP_BYTES) -> None:
        self.host = host
        self.cap_bytes = cap_bytes
        self._client = client
        self._sftp: paramiko.SFTPClient | None = None

    @property
    def transport(self) -> paramiko.Transport | None:
        """The SSH transport, or None once the client is closed."""
        return self._client.get_transport()

    def is_alive(self) -> bool:
        """True while the SSH connection is up."""
        transport = self.transport
        return transport is not None and transport.is_active()

    def run(self, argv: list[str], *, sudo: bool | None = None, timeout_s: float | None = None) -> CommandResult:
        """Run argv on the host and return its exit status and capped output.

        Both streams are read while the command runs, so a command that
        fills the SSH window on either stream cannot block. At the deadline
        (timeout_s, else the host's command_timeout_s) the channel is closed
        without waiting for the remote process, and the result has
        timed_out=True and exit_status=None.
        """
        use_sudo = self.host.sudo if sudo is None else sudo
        line = command_line(argv, sudo=use_sudo)
        limit_s = self.host.command_timeout_s if timeout_s is None else timeout_s
        transport = self.transport
        if transport is None or not transport.is_active():
            raise RemoteError(f"connection to host {self.host.name} is closed; cannot run {argv[0]}")

        logger.debug("host %s: running %s", self.host.name, line)
        started = time.monotonic()
        try:
            channel = transport.open_session(timeout=self.host.connect_timeout_s)
        except paramiko.SSHException as exc:
            raise RemoteError(f"cannot open a channel on host {self.host.name}: {exc}") from None
        stdout = StreamCapture(self.cap_bytes)
        stderr = StreamCapture(self.cap_bytes)
        try:
            channel.exec_command(line)
            channel.shutdown_write()  # stdin gets EOF at once, so a command reading it does not wait
            timed_out = not self._drain(channel, stdout, stderr, started + limit_s)
            exit_status = None if timed_out else channel.recv_exit_status()
        except (paramiko.SSHException, OSError) as exc:
            raise RemoteError(f"running {argv[0]} on host {self.host.name} failed: {exc}") from None
        finally:
            channel.close()
        if exit_status is not None and exit_status < 0:
            # paramiko reports -1 when the channel closed without an exit-status
            # message, for example when a signal killed the command.
            if not self.is_alive():
                raise RemoteError(f"connection to host {self.host.name} was lost while running {argv[0]}")
            exit_status = None

        duration_s = time.monotonic() - started
        result = CommandResult(
            argv=list(argv),
            exit_status=exit_status,
            stdout=stdout.text(),
            stderr=stderr.text(),
            stdout_total_bytes=stdout.total_bytes,
            stderr_total_bytes=stderr.total_bytes,
            stdout_truncated=stdout.truncated,
            stderr_truncated=stderr.truncated,
            timed_out=timed_out,
            duration_s=duration_s,
            command_line=line,
        )
        outcome = f"timed out after {limit_s:g} s" if timed_out else f"exit status {exit_status}"
        logger.info(
            "host %s: %s %s, stdout %d bytes, stderr %d bytes, %.2f s",
            self.host.name,
            argv[0],
            outcome,
            stdout.total_bytes,
            stderr.total_bytes,
            duration_s,
        )
        return result

    @staticmethod
    def _drain(channel: paramiko.Channel, stdout: StreamCapture, stderr: StreamCapture, deadline: float) -> bool:
        """Read both streams until the command has ended and both are at EOF. Return False at the deadline."""
        while True:
            while channel.recv_ready():
                stdout.feed(channel.recv(_READ_CHUNK))
            while channel.recv_stderr_ready():
                stderr.feed(channel.recv_stderr(_READ_CHUNK))
            at_eof = channel.eof_received or channel.closed
            if at_eof and channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            wait_s = min(_POLL_INTERVAL_S, remaining)
            if at_eof:
                # After EOF the channel's poll pipe stays readable, so select
                # would return at once; wait for the exit status instead.
                channel.status_event.wait(wait_s)
            else:
                select.select([channel], [], [], wait_s)

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = self._client.open_sftp()
            except (paramiko.SSHException, OSError) as exc:
                raise RemoteError(f"cannot start SFTP on host {self.host.name}: {exc}") from None
        return self._sftp

    def stat(self, path: str) -> RemoteStat | None:
        """Return the lstat of path (a symlink is reported as one, not followed), or None when it does not exist.

        Uses SFTP, so no shell parses the path.
        """
        if "\x00" in path:
            raise RemoteArgumentError(f"path {path!r} contains a NUL byte")
        sftp = self._sftp_client()
        try:
            attributes = sftp.lstat(path)
        except FileNotFoundError:
            return None
        except PermissionError:
            raise RemoteError(
                f"permission denied reading {path} on host {self.host.name} as user {self.host.user}"
            ) from None
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise RemoteError(f"cannot stat {path} on host {self.host.name}: {exc.strerror or exc}") from None
        except paramiko.SSHException as exc:
            raise RemoteError(f"cannot stat {path} on host {self.host.name}: {exc}") from None
        mode = attributes.st_mode or 0
        return RemoteStat(
            path=path,
            kind=_kind(mode),
            size=attributes.st_size or 0,
            mode=f"{stat_module.S_IMODE(mode):04o}",
            uid=attributes.st_uid or 0,
            gid=attributes.st_gid or 0,
            mtime=_iso_utc(attributes.st_mtime),
        )

    def close(self) -> None:
        """Close the SFTP channel and the SSH connection, and wait for paramiko's thread to end."""
        if self._sftp is not None:
            try:
                self._sftp.close()
            except (paramiko.SSHException, OSError) as exc:
                logger.debug("host %s: closing SFTP failed: %s", self.host.name, exc)
            self._sftp = None
        close_client(self._client)


_THREAD_JOIN_TIMEOUT_S = 5.0


def close_client(client: paramiko.SSHClient) -> None:
    """Close a client and join its transport thread.

    paramiko's close() stops the thread but may return before it has ended,
    so the join makes "no thread left after close" hold.
    """
    transport = client.get_transport()
    client.close()
    if transport is not None and transport.is_alive():
        transport.join(_THREAD_JOIN_TIMEOUT_S)
