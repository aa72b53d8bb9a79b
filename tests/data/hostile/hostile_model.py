"""The case record of the hostile corpus, the policy config it is judged against, and text builders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HOST = "svc-auto"

# The operator's policy every case is checked against: realistic allowlists,
# so that a "policy" outcome means the value got past the schema.
POLICY_CONFIG: dict[str, Any] = {
    "hosts": {HOST: {"address": "127.0.0.1", "user": "glpibot", "known_hosts": "known_hosts"}},
    "actions": {
        "http_check": {"allowed_urls": ["http://127.0.0.1:*/*", "https://*.home.arpa/*"]},
        "path_exists": {"allowed_paths": {HOST: ["/srv/**"]}},
        "docker_container_check": {"allowed_containers": {HOST: ["wiki-*"]}},
        "docker_compose_remote": {
            "projects": {"grafana": {"host": HOST, "path": "/srv/grafana", "operations": ["ps", "up"]}}
        },
        "systemd_remote": {
            "allowed_units": {HOST: ["nginx.service", "backup@*.service"]},
            "operations": ["status", "is-active", "restart"],
        },
    },
}

KINDS = ("missing", "invalid", "policy", "accepted")
INPUTS = {"spec": ".yaml", "body": ".html"}


@dataclass
class Case:
    """One hostile input and the outcome glpibot must reach; see generate.py for the manifest fields."""

    id: str
    category: str
    input: str  # "spec" or "body"
    text: str | bytes  # bytes only for input that is not valid UTF-8
    kind: str
    path: str = ""
    message: str = ""
    value: Any = None
    limit: str | None = None
    pass_slice: bool = False
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"case {self.id}: unknown kind {self.kind!r}")
        if self.input not in INPUTS:
            raise ValueError(f"case {self.id}: unknown input {self.input!r}")
        if self.kind == "accepted" and self.pass_slice:
            raise ValueError(f"case {self.id}: the pass slice holds blocked cases only")

    @property
    def encoding(self) -> str:
        return "bytes" if isinstance(self.text, bytes) else "utf-8"

    def data(self) -> bytes:
        """Return the file content; text is written as UTF-8 with its line endings untouched."""
        if isinstance(self.text, bytes):
            return self.text
        return self.text.encode("utf-8")

    def manifest_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": self.id,
            "category": self.category,
            "file": self.id + INPUTS[self.input],
            "input": self.input,
            "encoding": self.encoding,
            "kind": self.kind,
            "path": self.path,
            "message": self.message,
        }
        if self.kind == "accepted":
            entry["value"] = self.value
        if self.limit:
            entry["limit"] = self.limit
        if self.pass_slice:
            entry["pass_slice"] = True
        if self.note:
            entry["note"] = self.note
        return entry


def quote(value: str) -> str:
    """Write text as a YAML double-quoted scalar, with every non-printable character as an escape."""
    parts = ['"']
    for char in value:
        code = ord(char)
        if char in '"\\':
            parts.append("\\" + char)
        elif char.isprintable() or char == " ":
            parts.append(char)
        elif code <= 0xFF:
            parts.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            parts.append(f"\\u{code:04x}")
        else:
            parts.append(f"\\U{code:08x}")
    parts.append('"')
    return "".join(parts)


def spec(
    action: str,
    params: dict[str, str] | None,
    *,
    host: str | None = HOST,
    reason: str | None = None,
) -> str:
    """Return a one-action spec; `params` maps each key to its YAML text, as typed."""
    lines = ["glpibot: 1"]
    if reason is not None:
        lines.append(f"reason: {reason}")
    lines.append(f"action: {action}")
    if host is not None and action != "http_check":
        lines.append(f"host: {host}")
    if params is not None:
        lines.append("params:")
        lines.extend(f"  {key}: {value}" for key, value in params.items())
    return "\n".join(lines) + "\n"


def http(**params: str) -> str:
    """Return an http_check spec; url defaults to an allowed one."""
    return spec("http_check", {"url": quote("http://127.0.0.1:8080/health"), **params}, host=None)


def url(value: str) -> str:
    """Return an http_check spec for one URL, written quoted."""
    return spec("http_check", {"url": quote(value)}, host=None)


def path(value: str) -> str:
    return spec("path_exists", {"path": quote(value)})


def unit(value: str, operation: str = "status", host: str = HOST) -> str:
    return spec("systemd_remote", {"unit": quote(value), "operation": operation}, host=host)


def container(value: str, host: str = HOST) -> str:
    return spec("docker_container_check", {"container": quote(value)}, host=host)


def compose(project: str = "grafana", operation: str = "ps", services: str | None = None) -> str:
    params = {"project": quote(project), "operation": operation}
    if services is not None:
        params["services"] = services
    return spec("docker_compose_remote", params)


def editor_body(yaml_text: str, *, greeting: str = "Hello,", signature: str = "Thanks") -> str:
    """Return a ticket body the way GLPI's editor stores a typed spec: `<br>` lines, `&nbsp;` indentation."""
    lines = []
    for line in yaml_text.strip("\n").split("\n"):
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        lines.append("&nbsp;" * indent + stripped.replace("&", "&amp;").replace("<", "&lt;"))
    return f"<p>{greeting}</p><p>" + "<br>".join(lines) + f"</p><p>{signature}</p>"
