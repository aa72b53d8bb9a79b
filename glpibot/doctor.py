"""`glpibot doctor`: check a setup end to end, one line per check, changing nothing."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema

from glpibot.config import Config, HostSettings
from glpibot.credentials import (
    GLPI_CLIENT_SECRET,
    GLPI_PASSWORD,
    MEMORY_TOKEN,
    SSH_KEY_PASSPHRASE,
    SecretSource,
    credential_path,
    read_secret,
)
from glpibot.errors import ConfigError, GlpibotError, GlpiError, HostKeyError, RemoteError
from glpibot.redact import redact
from glpibot.resources import schemas_dir


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    next_step: str = ""

    def line(self) -> str:
        status = "ok     " if self.ok else "PROBLEM"
        text = f"{status} {self.name}: {self.detail}"
        if not self.ok and self.next_step:
            text += f" -> {self.next_step}"
        return redact(text)

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": redact(self.detail), "next_step": self.next_step}


def run_checks(config: Config) -> list[Check]:
    """Run every check in order; a failed check never stops the later ones that do not depend on it."""
    checks = [Check("config", True, f"{config.path or 'config'} is valid")]
    checks.append(_format_checkers())
    secrets = dict(_secret_checks(config, checks))
    checks.extend(_glpi_checks(config, secrets))
    checks.append(_writable_dir("state directory", config.state_dir))
    checks.extend(_artifact_checks(config))
    checks.append(_memory_check(config, secrets.get("memory")))
    for host in config.hosts.values():
        checks.extend(_host_checks(config, host))
    return checks


def _format_checkers() -> Check:
    """Fail when a schema relies on a `format` that jsonschema would silently not check."""
    known = set(jsonschema.FormatChecker().checkers)
    missing = set()
    for path in schemas_dir().rglob("*.json"):
        missing |= {fmt for fmt in _formats_in(path.read_text(encoding="utf-8")) if fmt not in known}
    if missing:
        return Check(
            "schema formats",
            False,
            f"no checker is registered for format(s) {', '.join(sorted(missing))}",
            "install the optional jsonschema format dependencies or drop the format from the schema",
        )
    return Check("schema formats", True, "every format used in the schemas has a checker")


def _formats_in(text: str) -> Iterator[str]:
    import json

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("format"), str):
                yield node["format"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    yield from walk(json.loads(text))


def _secret_checks(config: Config, checks: list[Check]) -> Iterator[tuple[str, str]]:
    required: list[tuple[str, SecretSource]] = [("client_secret", GLPI_CLIENT_SECRET), ("password", GLPI_PASSWORD)]
    if config.memory.sink == "http":
        required.append(("memory", MEMORY_TOKEN))
    for key, source in required:
        try:
            value = read_secret(source)
        except ConfigError as exc:
            checks.append(Check(f"secret {source.env_var}", False, str(exc)))
            continue
        checks.append(Check(f"secret {source.env_var}", True, f"{source.purpose} is set"))
        if value:
            yield key, value
    if any(host.key_file is None for host in config.hosts.values()):
        path = credential_path("ssh-key")
        present = path is not None and path.is_file()
        checks.append(
            Check(
                "secret ssh-key",
                present,
                "the ssh-key credential file is present" if present else "a host has no key_file and no ssh-key credential is set",
                "set key_file on the host or LoadCredential=ssh-key in the service unit",
            )
        )


def _glpi_checks(config: Config, secrets: dict[str, str]) -> list[Check]:
    from glpibot.glpi.client import GlpiClient

    if "client_secret" not in secrets or "password" not in secrets:
        return [Check("GLPI", False, "skipped: the GLPI secrets are missing", "set them first")]
    client = GlpiClient(
        config.glpi, client_secret=secrets["client_secret"], password=secrets["password"], token_cache=None
    )
    checks = []
    try:
        user_id = client.user_id()
    except GlpiError as exc:
        client.close()
        return [Check("GLPI login", False, str(exc), _glpi_hint(exc))]
    checks.append(Check("GLPI login", True, f"token granted with scope api at {config.glpi.api_url}"))
    checks.append(Check("GLPI bot user", True, f"{config.glpi.username} is user id {user_id}"))
    try:
        category_id = client.category_id(config.glpi.category)
        checks.append(Check("GLPI category", True, f"{config.glpi.category!r} is category id {category_id}"))
    except GlpiError as exc:
        checks.append(
            Check("GLPI category", False, str(exc), "check glpi.category against Setup > Dropdowns > ITIL categories")
        )
    client.close()
    return checks


def _glpi_hint(exc: GlpiError) -> str:
    if exc.http_status is None:
        return "check glpi.url and that GLPI answers from this machine"
    if exc.http_status in (400, 401):
        return "check the client id, client secret, bot login and password, and that the OAuth client allows the password grant"
    if exc.http_status == 403:
        return "enable the high-level API and tick the api scope on the OAuth client"
    return "look at GLPI's logs"


def _writable_dir(name: str, path: Path) -> Check:
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return Check(name, False, f"{path}: {existing} is not a directory", "fix the path in the config")
    if not os.access(existing, os.W_OK | os.X_OK):
        return Check(name, False, f"{path} is not writable by this user", f"chown or chmod {existing}")
    if existing != path:
        return Check(name, True, f"{path} does not exist yet; {existing} is writable, so it will be created")
    return Check(name, True, f"{path} is writable")


def _artifact_checks(config: Config) -> list[Check]:
    directory = config.artifacts.dir
    checks = [_writable_dir("artifact directory", directory)]
    if config.artifacts.git_commit:
        probe = directory
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent  # the folder is created on the first write; its repository may already exist
        try:
            result = subprocess.run(
                ["git", "-C", str(probe), "rev-parse", "--show-toplevel"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            inside = result.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            inside = False
        checks.append(
            Check(
                "artifact git",
                inside,
                f"{directory} is inside the git work tree {result.stdout.strip()}" if inside else f"{directory} is not inside a git work tree",
                "run git init in the documentation repository or set artifacts.git_commit: false",
            )
        )
    return checks


def _memory_check(config: Config, token: str | None) -> Check:
    memory = config.memory
    if memory.sink == "none":
        return Check("memory sink", True, "disabled (sink: none)")
    if memory.sink == "jsonl":
        assert memory.path is not None
        check = _writable_dir("memory sink", memory.path.parent)
        return Check("memory sink", check.ok, f"jsonl file {memory.path}: {check.detail}", check.next_step)
    parts = urlsplit(memory.url or "")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=memory.timeout_s):
            pass
    except OSError as exc:
        return Check("memory sink", False, f"{memory.url} is unreachable: {exc}", "check memory.url and the network")
    return Check("memory sink", True, f"{memory.url} accepts connections")


def _host_checks(config: Config, host: HostSettings) -> list[Check]:
    label = f"host {host.name}"
    try:
        with socket.create_connection((host.address, host.port), timeout=host.connect_timeout_s):
            pass
    except OSError as exc:
        return [Check(f"{label} connect", False, f"{host.address}:{host.port}: {exc}", "check address, port and firewall")]
    checks = [Check(f"{label} connect", True, f"{host.address}:{host.port} accepts TCP connections")]

    from glpibot.remote.pool import SshPool

    single = Config(
        path=config.path,
        glpi=config.glpi,
        state_dir=config.state_dir,
        artifacts=config.artifacts,
        memory=config.memory,
        hosts={host.name: host},
    )
    try:
        passphrase = read_secret(SSH_KEY_PASSPHRASE, required=False)
    except ConfigError as exc:
        return checks + [Check(f"{label} key", False, str(exc))]
    with SshPool(single, key_passphrase=passphrase) as pool:
        try:
            session = pool.session(host.name)
        except HostKeyError as exc:
            return checks + [Check(f"{label} host key", False, str(exc))]  # the message names the next step
        except (RemoteError, GlpibotError) as exc:
            checks.append(Check(f"{label} host key", True, f"matches {host.known_hosts}"))
            return checks + [Check(f"{label} key authentication", False, str(exc), _key_hint(str(exc), host))]
        checks.append(Check(f"{label} host key", True, f"matches {host.known_hosts}"))
        checks.append(Check(f"{label} key authentication", True, f"logged in as {host.user}"))
        if host.sudo:
            checks.append(_sudo_check(label, host, session.run(["true"], sudo=True, timeout_s=host.connect_timeout_s)))
    return checks


def _key_hint(message: str, host: HostSettings) -> str:
    """Return the next step for a failed SSH login: fix the key file, or install the key on the host."""
    lowered = message.lower()
    if "passphrase" in lowered:
        return "set GLPIBOT_SSH_KEY_PASSPHRASE (or the credential ssh-key-passphrase) to the key's passphrase"
    if "key file" in lowered:
        return f"check hosts.{host.name}.key_file (or the ssh-key credential)"
    return f"add the bot's public key to ~{host.user}/.ssh/authorized_keys on {host.address}"


def _sudo_check(label: str, host: HostSettings, result: Any) -> Check:
    from glpibot.remote.sudo import sudo_refusal

    if result.exit_status == 0:
        return Check(f"{label} sudo", True, "sudo -n true works")
    refusal = sudo_refusal(result.stderr)
    if refusal == "missing":
        hint = f"install sudo on {host.address}, or set sudo: false for host {host.name}"
    else:
        hint = f"add a NOPASSWD rule without requiretty for {host.user}"
    return Check(f"{label} sudo", False, f"sudo -n true failed: {result.stderr.strip()[:200]}", hint)
