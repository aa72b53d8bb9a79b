"""Open one SSH connection per host per pass and close them all at the end.

Authentication uses one private key only (the host's key_file, else the
`ssh-key` systemd credential), plus ssh-agent keys when the host sets
allow_agent. No password is ever sent, and keys in ~/.ssh are not searched.
"""

from __future__ import annotations

import errno
import logging
import socket
from pathlib import Path
from types import TracebackType
from typing import Callable

import paramiko

from glpibot.config import Config, HostSettings
from glpibot.credentials import SSH_KEY_PASSPHRASE, credential_path
from glpibot.errors import RemoteError
from glpibot.redact import register_secret
from glpibot.remote.hostkeys import RejectUnknownHostKey, changed_key_error, check_not_revoked, load_known_hosts
from glpibot.remote.session import RemoteSession, close_client

logger = logging.getLogger(__name__)

SSH_KEY_CREDENTIAL = "ssh-key"  # file name inside $CREDENTIALS_DIRECTORY
# paramiko 3.2 and later raise UnknownKeyType for a key file of another type. Older versions raise SSHException.
_UNKNOWN_KEY_TYPE: type[Exception] = getattr(paramiko.pkey, "UnknownKeyType", paramiko.SSHException)


def key_file_path(host: HostSettings) -> Path:
    """Return the private key file of a host: its key_file, else the `ssh-key` credential file."""
    if host.key_file is not None:
        return host.key_file
    path = credential_path(SSH_KEY_CREDENTIAL)
    if path is None:
        raise RemoteError(
            f"host {host.name} sets no key_file and $CREDENTIALS_DIRECTORY is not set; set key_file, "
            f"or provide the credential file '{SSH_KEY_CREDENTIAL}' (LoadCredential= in the service unit)"
        )
    return path


def _load_key_by_class(path: Path, passphrase: str | None) -> paramiko.PKey:
    """Try each key class in turn, for paramiko versions before 3.2, which lack PKey.from_path."""
    last_error: paramiko.SSHException | None = None
    for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return key_class.from_private_key_file(str(path), password=passphrase)
        except paramiko.PasswordRequiredException:
            raise
        except paramiko.SSHException as exc:
            last_error = exc
    raise paramiko.SSHException(str(last_error) if last_error else "unknown key type")


def _read_key(path: Path, passphrase: str | None) -> paramiko.PKey:
    if hasattr(paramiko.PKey, "from_path"):
        # The second parameter is `passphrase` in paramiko 3.x and `password` in 5.x, and both take bytes.
        return paramiko.PKey.from_path(path, passphrase.encode() if passphrase else None)
    return _load_key_by_class(path, passphrase)


def load_private_key(path: Path, passphrase: str | None) -> paramiko.PKey:
    """Load an Ed25519, ECDSA or RSA private key. A RemoteError names the file, never its content.

    The passphrase is one setting for all hosts, so a key that is not
    encrypted is loaded without it.
    """
    try:
        try:
            return _read_key(path, passphrase)
        except TypeError:
            # cryptography raises TypeError both for an encrypted key without a
            # passphrase and for a passphrase given with a key that is not encrypted.
            if passphrase is None:
                raise paramiko.PasswordRequiredException("private key file is encrypted") from None
            return _read_key(path, None)
    except FileNotFoundError:
        raise RemoteError(f"SSH key file {path} is missing") from None
    except PermissionError:
        raise RemoteError(f"cannot read SSH key file {path}: permission denied") from None
    except paramiko.PasswordRequiredException:
        raise RemoteError(_missing_passphrase_message(path)) from None
    except (ValueError, TypeError, paramiko.SSHException, _UNKNOWN_KEY_TYPE):
        # The library's own text misleads here: after a wrong passphrase paramiko
        # retries the file as PEM and reports missing PEM delimiters.
        problem = "the passphrase is wrong, or the file" if passphrase else "the file"
        raise RemoteError(
            f"cannot load SSH key file {path}: {problem} is not an Ed25519, ECDSA or RSA private key"
        ) from None


def _missing_passphrase_message(path: Path) -> str:
    return (
        f"SSH key file {path} is encrypted and no passphrase is set; set {SSH_KEY_PASSPHRASE.env_var} "
        f"or provide the credential file '{SSH_KEY_PASSPHRASE.credential}'"
    )


class SshPool:
    """SSH connections of one pass, keyed by inventory host name. Leaving a `with` block closes them all."""

    def __init__(
        self,
        config: Config,
        *,
        key_passphrase: str | None = None,
        client_factory: Callable[[], paramiko.SSHClient] = paramiko.SSHClient,
    ) -> None:
        self.config = config
        self._key_passphrase = key_passphrase or None
        register_secret(self._key_passphrase)
        self._client_factory = client_factory
        self._sessions: dict[str, RemoteSession] = {}
        self._closed = False
        self.handshakes = 0  # SSH handshakes started, one per TCP connection that was accepted

    def session(self, host_name: str) -> RemoteSession:
        """Return the host's session and connect on first use. A lost connection is reopened once, on the next call."""
        if self._closed:
            raise RemoteError(f"SSH pool is closed; cannot connect to host {host_name}")
        host = self.config.hosts.get(host_name)
        if host is None:
            raise RemoteError(f"host {host_name} is not in the hosts inventory of the config")
        existing = self._sessions.get(host_name)
        if existing is not None:
            if existing.is_alive():
                return existing
            logger.warning("host %s: SSH connection was lost; reconnecting", host_name)
            del self._sessions[host_name]
            existing.close()
        session = RemoteSession(host, self._connect(host))
        self._sessions[host_name] = session
        return session

    def _connect(self, host: HostSettings) -> paramiko.SSHClient:
        key_path = key_file_path(host)
        key = load_private_key(key_path, self._key_passphrase)
        client = self._client_factory()
        try:
            revoked = load_known_hosts(client, host)
            client.set_missing_host_key_policy(RejectUnknownHostKey(host))
            logger.debug("host %s: connecting to %s port %d as %s", host.name, host.address, host.port, host.user)
            client.connect(
                hostname=host.address,
                port=host.port,
                username=host.user,
                pkey=key,
                look_for_keys=False,
                allow_agent=host.allow_agent,
                timeout=host.connect_timeout_s,
                banner_timeout=host.connect_timeout_s,
                auth_timeout=host.connect_timeout_s,
                channel_timeout=host.connect_timeout_s,
                transport_factory=self._counting_transport,
            )
            transport = client.get_transport()
            if revoked and transport is not None:
                check_not_revoked(host, transport.get_remote_server_key(), revoked)
        except BaseException as exc:
            close_client(client)
            raise _connect_error(host, key_path, exc) from None
        logger.info("host %s: connected to %s port %d as %s", host.name, host.address, host.port, host.user)
        return client

    def _counting_transport(self, sock: socket.socket, **options: object) -> paramiko.Transport:
        # paramiko calls this once the TCP connection is up, just before the handshake.
        self.handshakes += 1
        return paramiko.Transport(sock, **options)  # type: ignore[arg-type]

    def close(self) -> None:
        """Close every SFTP channel and SSH connection. Calling it again does nothing."""
        self._closed = True
        sessions = list(self._sessions.values())
        self._sessions.clear()
        for session in sessions:
            session.close()

    def __enter__(self) -> "SshPool":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _connect_error(host: HostSettings, key_path: Path, exc: BaseException) -> BaseException:
    """Translate a paramiko or socket error from connect into a RemoteError naming the host."""
    where = f"host {host.name} ({host.address} port {host.port})"
    if isinstance(exc, RemoteError):  # HostKeyError from the missing-key policy, or a known_hosts problem
        return exc
    if isinstance(exc, paramiko.BadHostKeyException):
        return changed_key_error(host, exc)
    if isinstance(exc, paramiko.AuthenticationException):
        return RemoteError(
            f"key authentication as {host.user} on {where} failed; check that the public key of "
            f"{key_path} is in the authorized_keys of {host.user}"
        )
    if isinstance(exc, socket.gaierror):
        return RemoteError(f"cannot resolve the address of {where}: {exc.strerror}")
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        codes = {error.errno for error in exc.errors.values()}
        if codes == {errno.ECONNREFUSED}:
            return RemoteError(f"connection to {where} was refused")
        return RemoteError(f"cannot connect to {where}: host unreachable")
    if isinstance(exc, ConnectionRefusedError):
        return RemoteError(f"connection to {where} was refused")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return RemoteError(f"connection to {where} timed out after {host.connect_timeout_s:g} s")
    if isinstance(exc, OSError):
        return RemoteError(f"cannot connect to {where}: {exc.strerror or exc}")
    if isinstance(exc, paramiko.SSHException):
        return RemoteError(f"SSH handshake with {where} failed: {exc}")
    return exc
