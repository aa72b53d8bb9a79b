"""Strict host key checking against the one known_hosts file a host names in the config.

glpibot never trusts a key on first use and never writes known_hosts: an
unknown key and a changed key both raise HostKeyError with the fingerprint
the server offered and the command that adds a verified key.
"""

from __future__ import annotations

import base64
import hashlib

import paramiko

from glpibot.config import HostSettings
from glpibot.errors import HostKeyError, RemoteError

DEFAULT_SSH_PORT = 22


def fingerprint(key: paramiko.PKey) -> str:
    """Return the key's SHA256 fingerprint in OpenSSH form: "SHA256:" and unpadded base64."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def known_hosts_name(address: str, port: int) -> str:
    """Return the name a known_hosts entry uses: "address" on port 22, else "[address]:port"."""
    return address if port == DEFAULT_SSH_PORT else f"[{address}]:{port}"


def _keyscan_command(host: HostSettings) -> str:
    return f"ssh-keyscan -p {host.port} {host.address} >> {host.known_hosts}"


def load_known_hosts(client: paramiko.SSHClient, host: HostSettings) -> list[paramiko.PKey]:
    """Load the host's known_hosts file into the client, and nothing else; return the keys marked @revoked.

    The system and user files (~/.ssh/known_hosts) are never read, so only
    the keys the operator listed for glpibot are trusted. The file is parsed
    here because paramiko's HostKeys.load (3.x to 5.1) raises on OpenSSH's
    marker lines. `@cert-authority` lines are skipped, since paramiko cannot
    check host certificates. `@revoked` keys are returned, so the caller can
    reject a server that presents one.
    """
    path = host.known_hosts
    if not path.is_file():
        raise RemoteError(
            f"known_hosts file {path} of host {host.name} is missing; verify the host's fingerprint, "
            f"then create the file with {_keyscan_command(host)}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RemoteError(f"cannot read known_hosts file {path} of host {host.name}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise RemoteError(f"known_hosts file {path} of host {host.name} is not a UTF-8 text file") from None

    host_keys = client.get_host_keys()
    revoked: list[paramiko.PKey] = []
    for line_number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        marker = ""
        if line.startswith("@"):
            marker, _, line = line.partition(" ")
            line = line.strip()
            if marker != "@revoked":
                continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line, line_number)
        except paramiko.hostkeys.InvalidHostKey:
            raise RemoteError(
                f"known_hosts file {path} of host {host.name} has an invalid key on line {line_number}; "
                "fix or remove that line"
            ) from None
        if entry is None:  # too few fields or a key type paramiko does not support: skipped, as OpenSSH does
            continue
        if marker == "@revoked":
            revoked.append(entry.key)
            continue
        for name in entry.hostnames:
            host_keys.add(name, entry.key.get_name(), entry.key)
    return revoked


def check_not_revoked(host: HostSettings, key: paramiko.PKey, revoked: list[paramiko.PKey]) -> None:
    """Raise HostKeyError when the server's key is marked @revoked in the known_hosts file."""
    if any(candidate == key for candidate in revoked):
        raise HostKeyError(
            f"host key of {host.name} ({known_hosts_name(host.address, host.port)}) is marked @revoked in "
            f"{host.known_hosts}: the server offered {key.get_name()} {fingerprint(key)}; do not connect "
            "until the host has a new key"
        )


class RejectUnknownHostKey(paramiko.MissingHostKeyPolicy):
    """Raise HostKeyError for a host whose name has no entry in the known_hosts file."""

    def __init__(self, host: HostSettings) -> None:
        self.host = host

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise HostKeyError(
            f"host key of {self.host.name} ({hostname}) is unknown: the server offered "
            f"{key.get_name()} {fingerprint(key)}, and {self.host.known_hosts} has no entry for {hostname}; "
            f"verify the fingerprint, then add the key with {_keyscan_command(self.host)}"
        )


def changed_key_error(host: HostSettings, exc: paramiko.BadHostKeyException) -> HostKeyError:
    """Build the error for a server whose key differs from its known_hosts entry."""
    name = known_hosts_name(host.address, host.port)
    return HostKeyError(
        f"host key of {host.name} ({name}) has changed, possible man-in-the-middle: the server offered "
        f"{exc.key.get_name()} {fingerprint(exc.key)}, but {host.known_hosts} lists "
        f"{exc.expected_key.get_name()} {fingerprint(exc.expected_key)}; if the host was reinstalled, "
        f"verify the new fingerprint, remove the old entry for {name}, then add the key with "
        f"{_keyscan_command(host)}"
    )

