"""Load and validate the YAML configuration file into typed settings."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from glpibot.errors import ConfigError
from glpibot.resources import load_schema
from glpibot.spec.strict_schema import StrictValidator

DEFAULT_CONFIG_PATH = Path("/etc/glpibot/config.yaml")
CONFIG_ENV_VAR = "GLPIBOT_CONFIG"
MAX_CONFIG_BYTES = 1024 * 1024


@dataclass(frozen=True)
class GlpiSettings:
    url: str  # root URL without a trailing slash; the API is <url>/api.php
    client_id: str
    username: str
    category: str | int  # completename, or the category id
    eligible_statuses: tuple[int, ...] = (1, 2)
    verify_tls: bool = True
    timeout_s: float = 10.0

    @property
    def api_url(self) -> str:
        return f"{self.url}/api.php"


@dataclass(frozen=True)
class HostSettings:
    name: str  # the inventory name that specs use in `host:`
    address: str
    user: str
    known_hosts: Path
    port: int = 22
    key_file: Path | None = None  # None: the `ssh-key` credential file
    sudo: bool = False
    compose_command: tuple[str, ...] = ("docker", "compose")
    connect_timeout_s: float = 10.0
    command_timeout_s: float = 120.0
    allow_agent: bool = False


@dataclass(frozen=True)
class ArtifactSettings:
    dir: Path
    git_commit: bool = False


@dataclass(frozen=True)
class MemorySettings:
    sink: str = "jsonl"  # none | jsonl | http
    path: Path | None = None
    url: str | None = None
    timeout_s: float = 10.0


@dataclass(frozen=True)
class Config:
    """The whole validated configuration. `actions` keeps the per-action policy sections as dicts."""

    path: Path | None
    glpi: GlpiSettings
    state_dir: Path
    artifacts: ArtifactSettings
    memory: MemorySettings
    templates_dir: Path | None = None
    pass_timeout_s: float = 300.0
    hosts: dict[str, HostSettings] = field(default_factory=dict)
    actions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def action_settings(self, action: str) -> dict[str, Any]:
        """Return the policy section of one action, or {} when the operator set none."""
        return self.actions.get(action, {})


def resolve_config_path(option: str | Path | None) -> Path:
    """Return the config path from --config, else $GLPIBOT_CONFIG, else the default."""
    if option:
        return Path(option)
    from_env = os.environ.get(CONFIG_ENV_VAR)
    if from_env:
        return Path(from_env)
    return DEFAULT_CONFIG_PATH


def load_config(path: str | Path | None = None) -> Config:
    """Read, validate and type the configuration; raise ConfigError naming the file and key path."""
    config_path = resolve_config_path(path)
    try:
        with config_path.open("rb") as handle:
            raw_bytes = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(
            f"config file {config_path} not found; pass --config PATH or set {CONFIG_ENV_VAR}"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {config_path}: {exc.strerror}") from None
    if len(raw_bytes) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {config_path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        data = yaml.safe_load(raw_bytes.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {config_path} is not valid UTF-8") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {config_path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {config_path} must hold a YAML mapping with at least a 'glpi' section")
    return config_from_dict(data, path=config_path)


def _key_path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _describe(error: jsonschema.ValidationError) -> str:
    where = _key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        names = ", ".join((f"{where}.{key}" if where else key) for key in unknown)
        hint = f"; allowed here: {', '.join(known)}" if known else ""
        return f"unknown key {names}{hint}"
    if error.validator == "required":
        return f"missing key {error.message.split(' ')[0]} in {where or 'the top level'}"
    return f"{where or '(top level)'}: {error.message}"


def validate_config_data(data: dict[str, Any]) -> list[str]:
    """Return one line per schema error of a config mapping, sorted by key path."""
    validator = StrictValidator(load_schema("config.schema.json"))
    errors = sorted(validator.iter_errors(data), key=lambda error: list(map(str, error.absolute_path)))
    return [_describe(error) for error in errors]


def config_from_dict(data: dict[str, Any], *, path: Path | None = None) -> Config:
    """Validate a config mapping and build the typed Config."""
    problems = validate_config_data(data)
    if problems:
        source = f"config file {path}" if path else "config"
        raise ConfigError(f"{source} is invalid: " + "; ".join(problems))

    glpi = data["glpi"]
    glpi_settings = GlpiSettings(
        url=glpi["url"].rstrip("/"),
        client_id=glpi["client_id"],
        username=glpi["username"],
        category=glpi["category"],
        eligible_statuses=tuple(glpi.get("eligible_statuses", [1, 2])),
        verify_tls=glpi.get("verify_tls", True),
        timeout_s=float(glpi.get("timeout_s", 10)),
    )
    state_dir = Path(data.get("state_dir", "/var/lib/glpibot"))

    artifacts = data.get("artifacts") or {}
    artifact_settings = ArtifactSettings(
        dir=Path(artifacts.get("dir", state_dir / "artifacts")),
        git_commit=artifacts.get("git_commit", False),
    )

    memory = data.get("memory") or {}
    memory_settings = MemorySettings(
        sink=memory.get("sink", "jsonl"),
        path=Path(memory.get("path", state_dir / "memory.jsonl")),
        url=memory.get("url"),
        timeout_s=float(memory.get("timeout_s", 10)),
    )
    if memory_settings.sink == "http" and not memory_settings.url:
        raise ConfigError("memory.url is required when memory.sink is http")

    hosts = {name: _host_settings(name, entry) for name, entry in (data.get("hosts") or {}).items()}
    actions = data.get("actions") or {}
    _check_inventory_references(actions, hosts)

    templates_dir = data.get("templates_dir")
    return Config(
        path=path,
        glpi=glpi_settings,
        state_dir=state_dir,
        artifacts=artifact_settings,
        memory=memory_settings,
        templates_dir=Path(templates_dir) if templates_dir else None,
        pass_timeout_s=float(data.get("pass_timeout_s", 300)),
        hosts=hosts,
        actions=actions,
    )


def _host_settings(name: str, entry: dict[str, Any]) -> HostSettings:
    key_file = entry.get("key_file")
    return HostSettings(
        name=name,
        address=entry["address"],
        user=entry["user"],
        known_hosts=Path(entry["known_hosts"]),
        port=entry.get("port", 22),
        key_file=Path(key_file) if key_file else None,
        sudo=entry.get("sudo", False),
        compose_command=tuple(entry.get("compose_command", "docker compose").split()),
        connect_timeout_s=float(entry.get("connect_timeout_s", 10)),
        command_timeout_s=float(entry.get("command_timeout_s", 120)),
        allow_agent=entry.get("allow_agent", False),
    )


def _check_inventory_references(actions: dict[str, Any], hosts: dict[str, HostSettings]) -> None:
    """Reject allowlists that name a host the inventory does not define."""
    problems = []
    for action, key in (
        ("path_exists", "allowed_paths"),
        ("docker_container_check", "allowed_containers"),
        ("systemd_remote", "allowed_units"),
    ):
        for host in (actions.get(action) or {}).get(key, {}):
            if host not in hosts:
                problems.append(f"actions.{action}.{key}.{host} names a host missing from hosts")
    for project, entry in ((actions.get("docker_compose_remote") or {}).get("projects") or {}).items():
        if entry["host"] not in hosts:
            problems.append(
                f"actions.docker_compose_remote.projects.{project}.host '{entry['host']}' is missing from hosts"
            )
    if problems:
        raise ConfigError("config is invalid: " + "; ".join(problems) + "; add the host under hosts or fix the name")
