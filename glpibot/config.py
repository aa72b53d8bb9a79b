"""Load and validate the YAML configuration file into typed settings."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from glpibot.config_messages import ConfigProblem, schema_problems, show_value, yaml_problems
from glpibot.errors import ConfigError, SpecError
from glpibot.spec.messages import did_you_mean
from glpibot.spec.yaml_loader import LineMap, format_path, load_yaml

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
    """Read, validate and type the configuration.

    The file goes through the strict YAML loader of specs: YAML 1.2 core types
    (only true and false are booleans), no repeated keys, anchors or tags.
    Raises ConfigError naming the file, then one line per problem with its
    key path and line.
    """
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
        text = raw_bytes.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw_bytes.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"config file {config_path} is not valid UTF-8 (line {line}); save it as UTF-8") from None
    try:
        # NOTE: the spec loader's other limits hold here too: at most MAX_NODES
        # (10,000) scalars, lists and mappings, nested at most MAX_DEPTH (20) levels.
        data, lines = load_yaml(text, max_bytes=MAX_CONFIG_BYTES)
    except SpecError as exc:
        raise _invalid(config_path, yaml_problems(exc, text)) from None

    if not isinstance(data, dict):
        raise ConfigError(f"config file {config_path} must hold a YAML mapping with at least a 'glpi' section")
    return config_from_dict(data, path=config_path, lines=lines)


def _invalid(path: Path | None, problems: list[ConfigProblem]) -> ConfigError:
    """Build the error that lists every problem, one per line under a line naming the file."""
    source = f"config file {path}" if path else "config"
    count = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
    return ConfigError(f"{source} is invalid ({count}):\n" + "\n".join(f"  {problem}" for problem in problems))


def _config_problems(data: dict[str, Any], lines: LineMap) -> list[ConfigProblem]:
    """Return the schema problems and the checks across keys, one per key path, sorted by line."""
    problems = schema_problems(data, lines)
    reported = {problem.path for problem in problems}
    for problem in _cross_key_problems(data, lines):
        if problem.path not in reported:
            problems.append(problem)
    return sorted(problems, key=ConfigProblem.sort_key)


def validate_config_data(data: dict[str, Any], lines: LineMap | None = None) -> list[str]:
    """Return one line per problem of a config mapping, sorted by line; `lines` adds the YAML line to each."""
    return [str(problem) for problem in _config_problems(data, lines if lines is not None else LineMap())]


def config_from_dict(data: dict[str, Any], *, path: Path | None = None, lines: LineMap | None = None) -> Config:
    """Validate a config mapping and build the typed Config.

    `lines` is the line map of the YAML text the mapping was loaded from, so
    messages can give lines. A `glpi.category` of only digits ("2") is the
    category id.
    """
    problems = _config_problems(data, lines if lines is not None else LineMap())
    if problems:
        raise _invalid(path, problems)

    glpi = data["glpi"]
    glpi_settings = GlpiSettings(
        url=glpi["url"].rstrip("/"),
        client_id=glpi["client_id"],
        username=glpi["username"],
        category=_category_value(glpi["category"]),
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

    hosts = {name: _host_settings(name, entry) for name, entry in (data.get("hosts") or {}).items()}
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
        actions=data.get("actions") or {},
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


def _category_value(category: str | int) -> str | int:
    """Return a category given as digits ("2") as the id 2; any other text is a completename."""
    if isinstance(category, str) and re.fullmatch(r"[0-9]+", category):
        return int(category)
    return category


def _cross_key_problems(data: dict[str, Any], lines: LineMap) -> list[ConfigProblem]:
    """Check what the schema cannot state: the GLPI root URL, the category id, the memory URL, host references.

    Each check skips values of the wrong type, which the schema reports.
    """
    problems: list[ConfigProblem] = []
    glpi = data.get("glpi")
    if isinstance(glpi, dict):
        url_problem = _glpi_url_problem(glpi.get("url"))
        if url_problem is not None:
            problems.append(ConfigProblem("glpi.url", url_problem, lines.value_line_of(("glpi", "url"))))
        category = glpi.get("category")
        if isinstance(category, str) and _category_value(category) == 0:
            message = f"a category id starts at 1; got {show_value(category, lines.raw.get(('glpi', 'category')), set())}"
            problems.append(ConfigProblem("glpi.category", message, lines.value_line_of(("glpi", "category"))))

    memory = data.get("memory")
    if isinstance(memory, dict) and memory.get("sink") == "http" and not memory.get("url"):
        message = "missing required key url, which memory.sink: http needs; set it to the memory service's URL"
        problems.append(ConfigProblem("memory", message, lines.line_of(("memory",))))
    problems.extend(_inventory_problems(data, lines))
    return problems


def _glpi_url_problem(url: Any) -> str | None:
    """Return why an http(s) glpi.url is not GLPI's root URL, or None; the API path is added by glpibot."""
    if not isinstance(url, str) or not re.match(r"https?://", url):
        return None
    parts = urlsplit(url)
    segments = parts.path.split("/")
    for index, segment in enumerate(segments):
        if segment.lower() in ("api.php", "apirest.php"):
            root = f"{parts.scheme}://{parts.netloc}" + "/".join(segments[:index]).rstrip("/")
            if segment.lower() == "apirest.php":
                return f"glpi.url is GLPI's root URL; remove /{segment} (the legacy API; glpibot adds /api.php); use {root}"
            return f"glpi.url is GLPI's root URL; remove /{segment} (glpibot adds it); use {root}"
    return None


def _inventory_problems(data: dict[str, Any], lines: LineMap) -> list[ConfigProblem]:
    """Return a problem for each allowlist and compose project that names a host missing from `hosts`."""
    hosts = data.get("hosts") if isinstance(data.get("hosts"), dict) else {}
    actions = data.get("actions") if isinstance(data.get("actions"), dict) else {}
    known = list(hosts)
    problems = []

    def missing(path: tuple[str, ...], host: str, line: int | None) -> ConfigProblem:
        message = f"names host {host}, which is not defined under hosts; add it there or fix the name{did_you_mean(host, known)}"
        return ConfigProblem(format_path(path), message, line)

    for action, key in (
        ("path_exists", "allowed_paths"),
        ("docker_container_check", "allowed_containers"),
        ("systemd_remote", "allowed_units"),
    ):
        section = actions.get(action)
        allowlist = section.get(key) if isinstance(section, dict) else None
        for host in allowlist if isinstance(allowlist, dict) else {}:
            if host not in hosts:
                path = ("actions", action, key, host)
                problems.append(missing(path, host, lines.line_of(path)))

    compose = actions.get("docker_compose_remote")
    projects = compose.get("projects") if isinstance(compose, dict) else None
    for project, entry in projects.items() if isinstance(projects, dict) else []:
        host = entry.get("host") if isinstance(entry, dict) else None
        if isinstance(host, str) and host not in hosts:
            path = ("actions", "docker_compose_remote", "projects", project, "host")
            problems.append(missing(path, host, lines.value_line_of(path)))
    return problems
