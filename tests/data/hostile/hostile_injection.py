"""Shell-injection text in every string field of every action, and in `host` and `reason`.

Fields with a pattern or an enum (names, operations, kinds) must reject
every injection string. Free-text fields (a URL's request target, a path
that only reaches SFTP, expect_body_contains, reason) accept them as data,
because none of those values ever reaches a shell.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hostile_model import HOST, Case, quote, spec


@dataclass(frozen=True)
class Field:
    """One string field of one action, with the valid value that the injection text is added to."""

    label: str
    action: str
    name: str  # a params key, or "host" / "reason"
    base: str
    path: str  # the path an issue names, or where an accepted value is read
    message: str | None  # the rule a bad value breaks; None for free text


INJECTIONS: list[tuple[str, str | None]] = [
    ("semicolon", ";id"),
    ("subshell", "$(id)"),
    ("backticks", "`id`"),
    ("newline", "\nid"),
    ("leading-dash", None),  # None: a `-` goes in front of the value
    ("nul", "\x00"),
    ("pipe", "|id"),
    ("and", "&&id"),
    ("redirect", ">/tmp/x"),
    ("quotes", "'\""),
]

FIELDS = [
    Field("url", "http_check", "url", "http://127.0.0.1:8080/health", "params.url", None),
    Field("method", "http_check", "method", "GET", "params.method", "must be one of: GET, HEAD"),
    Field("body", "http_check", "expect_body_contains", "ok", "params.expect_body_contains", None),
    Field("path", "path_exists", "path", "/srv/data/report.txt", "params.path", None),
    Field("kind", "path_exists", "kind", "file", "params.kind", "must be one of: file, directory, any"),
    Field("container", "docker_container_check", "container", "wiki-app", "params.container", "must be a container name or id"),
    Field("expect", "docker_container_check", "expect", "running", "params.expect", "must be one of: running, healthy"),
    Field("project", "docker_compose_remote", "project", "grafana", "params.project", "must be a compose project name"),
    Field("compose-op", "docker_compose_remote", "operation", "ps", "params.operation", "must be one of: ps, pull, up"),
    Field("service", "docker_compose_remote", "services", "web", "params.services[0]", "must be a service name"),
    Field("unit", "systemd_remote", "unit", "nginx.service", "params.unit", "must be a full unit name"),
    Field("systemd-op", "systemd_remote", "operation", "status", "params.operation", "must be one of: status, is-active"),
    Field("host", "systemd_remote", "host", HOST, "host", "must be an inventory host name"),
    Field("reason", "systemd_remote", "reason", "check nginx", "reason", None),
]

BASE_PARAMS: dict[str, dict[str, Any]] = {
    "http_check": {"url": "http://127.0.0.1:8080/health"},
    "path_exists": {"path": "/srv/data/report.txt", "kind": "file"},
    "docker_container_check": {"container": "wiki-app", "expect": "running"},
    "docker_compose_remote": {"project": "grafana", "operation": "ps", "services": ["web"]},
    "systemd_remote": {"unit": "nginx.service", "operation": "status"},
}

# Injection cases that also run through a whole pass.
PASS_SLICE = {"unit-newline", "container-semicolon", "host-subshell", "service-leading-dash", "url-newline", "path-newline"}

PATH_RULE = "must be an absolute path starting with `/`"


def _free_text_outcome(field: Field, injection: str, value: str) -> tuple[str, str, str]:
    """Return (kind, message, note) for a field without a pattern: url, path, body text or reason."""
    if field.name == "url":
        if injection in ("newline", "nul"):
            return "invalid", "url must not contain control or invisible characters", ""
        if injection == "leading-dash":
            return "invalid", "url must start with http:// or https://", ""
        return "accepted", "", "part of the request target of an allowed URL; requests sends it, no shell sees it"
    if field.name == "path":
        if injection in ("newline", "nul", "leading-dash"):
            return "invalid", PATH_RULE, ""
        return "accepted", "", "the path only reaches an SFTP lstat, never a shell"
    if field.name == "expect_body_contains":
        return "accepted", "", "free text compared with the response body; it never reaches a shell"
    return "accepted", "", "free text shown escaped in the follow-up and the artifact; it never reaches a shell"


def _yaml(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(quote(item) for item in value) + "]"
    return quote(value)


def _case(field: Field, injection: str, text: str | None) -> Case:
    value = "-" + field.base if text is None else field.base + text
    params = dict(BASE_PARAMS[field.action])
    host, reason = HOST, None
    if field.name == "host":
        host = quote(value)
    elif field.name == "reason":
        reason = quote(value)
    elif field.name == "services":
        params["services"] = [value]
    else:
        params[field.name] = value
    spec_text = spec(field.action, {key: _yaml(item) for key, item in params.items()}, host=host, reason=reason)
    case_id = f"{field.label}-{injection}"
    if field.message is not None:
        return Case(case_id, "injection", "spec", spec_text, "invalid", field.path, field.message,
                    pass_slice=case_id in PASS_SLICE)
    kind, message, note = _free_text_outcome(field, injection, value)
    return Case(case_id, "injection", "spec", spec_text, kind, field.path, message,
                value=value if kind == "accepted" else None, pass_slice=case_id in PASS_SLICE, note=note)


def cases() -> Iterator[Case]:
    for field in FIELDS:
        for injection, text in INJECTIONS:
            yield _case(field, injection, text)
