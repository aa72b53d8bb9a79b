"""Validate a loaded spec against schemas/spec.schema.json and each action's params schema, and build the Spec.

Every problem of every step is collected and raised together as one
SpecError, each issue with its field path (`steps[3].params.expect_status`)
and YAML line. Values keep the YAML 1.2 core types of yaml_loader: only
`true` and `false` are booleans, so `host: no` names the host "no".
"""

from __future__ import annotations

import ipaddress
import logging
import re
import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import jsonschema

from glpibot.actions import ACTION_NAMES
from glpibot.errors import SpecError, SpecIssue
from glpibot.resources import load_action_schema, load_schema
from glpibot.spec.extract import MINIMAL_EXAMPLE, extract_spec_text, has_spec_fence, looks_like_html
from glpibot.spec.strict_schema import StrictValidator
from glpibot.spec.messages import Wording, did_you_mean, schema_issues, shown_value
from glpibot.spec.model import Spec, Step
from glpibot.spec.yaml_loader import LineMap, Path, format_path, load_yaml, printable

if TYPE_CHECKING:
    from glpibot.config import Config

logger = logging.getLogger(__name__)

_STEP_KEYS = ["action", "host", "params"]
_MAX_PORT = 65535
_URL_EXAMPLE_IPV6 = "http://[2001:db8::1]:8080/health"
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"^{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


@lru_cache(maxsize=None)
def _spec_validator() -> jsonschema.protocols.Validator:
    return StrictValidator(load_schema("spec.schema.json"))


@lru_cache(maxsize=None)
def _params_validator(action: str) -> jsonschema.protocols.Validator:
    return StrictValidator(load_action_schema(action))


def action_runs_on(action: str) -> str:
    """Return where an action runs, "runner" or "ssh", from the `x-runs-on` key of its params schema."""
    return str(load_action_schema(action).get("x-runs-on", "ssh"))


def _in_step(rel: Path) -> str:
    return f" in {format_path(rel)}" if rel else ""


def _spec_unknown(rel: Path, key: str, allowed: list[str]) -> str:
    if rel:
        return f"unknown key `{key}` in a step; allowed: {', '.join(_STEP_KEYS)}{did_you_mean(key, _STEP_KEYS)}"
    return f"unknown key `{key}`; allowed: {', '.join(allowed)}{did_you_mean(key, allowed)}"


def _spec_missing(rel: Path, key: str) -> str:
    if key == "glpibot":
        return "missing `glpibot: 1` (the spec format version) at the top of the spec"
    if key == "action":
        return f"missing `action` in the step; available: {', '.join(ACTION_NAMES)}"
    return f"missing `{key}`{_in_step(rel)}"


def _spec_value(rel: Path, value: Any, value_text: str) -> str | None:
    if rel and rel[-1] == "action":
        if not isinstance(value, str):
            return f"must be the name of an action; got {value_text}; available: {', '.join(ACTION_NAMES)}"
        return f"unknown action {value_text}; available: {', '.join(ACTION_NAMES)}"
    return None


def _spec_keyword(error: jsonschema.ValidationError, rel: Path) -> list[tuple[Path, str]] | None:
    """Word the top-level choice between `action` and `steps`, which the schema states with oneOf and not."""
    if rel or not isinstance(error.instance, dict):
        return None
    if error.validator == "oneOf":
        if "action" in error.instance and "steps" in error.instance:
            return [(("steps",), "use either `action` (one step) or `steps` (a list of steps), not both")]
        return [((), "missing `action` or `steps`: the spec needs one action, or a list of steps under `steps`")]
    if error.validator == "dependentSchemas" or error.validator == "not":
        return [
            ((key,), f"`{key}` goes inside each step when the spec uses `steps`")
            for key in ("host", "params")
            if key in error.instance
        ]
    return None


_SPEC_WORDING = Wording(unknown=_spec_unknown, missing=_spec_missing, value=_spec_value, keyword=_spec_keyword)


def _params_wording(action: str) -> Wording:
    def unknown(rel: Path, key: str, allowed: list[str]) -> str:
        return f"unknown parameter `{key}` for {action}; allowed: {', '.join(allowed)}{did_you_mean(key, allowed)}"

    def missing(rel: Path, key: str) -> str:
        return f"missing required parameter `{key}` for {action}"

    return Wording(unknown=unknown, missing=missing)


def check_http_url(url: str) -> str | None:
    """Return why `url` is not an absolute http(s) URL that http_check may request, or None when it is.

    Accepted: `http://` or `https://`, a host name, IPv4 address or bracketed
    IPv6 address, an optional port from 1 to 65535, then any path and query.
    Rejected: other schemes, user:password@, whitespace, control and
    invisible characters, backslashes. This does not depend on jsonschema's
    `format` checkers, which are skipped when their optional packages are missing.
    """
    if not isinstance(url, str):
        return "url must be text"
    if not url:
        return "url must not be empty"
    if any(char == " " or unicodedata.category(char) == "Zs" for char in url):
        return "url must not contain spaces; encode them as %20"
    if any(unicodedata.category(char) in ("Cc", "Cf") for char in url):
        return "url must not contain control or invisible characters such as tabs or line breaks"
    if "\\" in url:
        return "url must not contain a backslash; use / in paths"

    scheme_match = _SCHEME.match(url)
    scheme = scheme_match.group(1) if scheme_match else ""
    if scheme.lower() not in ("http", "https"):
        after = url[len(scheme) + 1 :]
        if scheme and "." not in scheme and not after[:1].isdigit():
            return f"url scheme `{scheme}` is not allowed; url must start with http:// or https://"
        return "url must start with http:// or https://"
    rest = url[len(scheme) + 1 :]
    if not rest.startswith("//"):
        return "url must start with http:// or https://"

    authority = re.split(r"[/?#]", rest[2:], maxsplit=1)[0]
    if "@" in authority:
        return "url must not contain a user name or password (`user:pass@`); glpibot sends no credentials in URLs"
    if not authority:
        return "url has no host name"
    return _check_authority(authority)


def _check_authority(authority: str) -> str | None:
    """Check the host and port part of a URL (between `//` and the path)."""
    if authority.startswith("["):
        close = authority.find("]")
        if close == -1:
            return f"url has an IPv6 address without its closing `]`; write it as {_URL_EXAMPLE_IPV6}"
        literal = authority[1:close]
        address = literal.split("%25", 1)[0]  # a zone id is written %25eth0 in URLs
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            return f"`[{_short(literal)}]` in url is not a valid IPv6 address"
        after = authority[close + 1 :]
        if after and not after.startswith(":"):
            return f"url has `{_short(after)}` after the IPv6 address; only `:port` may follow `]`"
        port = after[1:] if after else None
    elif "[" in authority or "]" in authority:
        return f"an IPv6 address in url must be in brackets, like {_URL_EXAMPLE_IPV6}"
    elif authority.count(":") > 1:
        return f"an IPv6 address in url must be in brackets, like {_URL_EXAMPLE_IPV6}"
    else:
        host, colon, port_text = authority.partition(":")
        port = port_text if colon else None
        problem = _check_host_name(host)
        if problem:
            return problem
    return _check_port(port)


def _check_host_name(host: str) -> str | None:
    if not host:
        return "url has no host name"
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"`{_short(host)}` in url is not a valid IPv4 address"
        return None
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return f"host `{_short(host)}` in url is not a valid host name"
    if not _HOST_NAME.match(ascii_host) or len(ascii_host) > 253:
        return f"host `{_short(host)}` in url is not a valid host name"
    return None


def _check_port(port: str | None) -> str | None:
    if not port:  # no port, or an empty one (`host:`): the scheme's default port
        return None
    if not re.fullmatch(r"[0-9]+", port):
        return f"port `{_short(port)}` in url is not a number"
    if len(port) > 5 or not 1 <= int(port) <= _MAX_PORT:
        return f"port {_short(port)} is out of range 1-{_MAX_PORT}"
    return None


def _short(text: str, limit: int = 60) -> str:
    text = printable(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _step_entries(data: dict[str, Any]) -> list[tuple[Path, dict[str, Any]]]:
    """Return (path, mapping) for each step: each item of `steps`, or the top level for a single action."""
    steps = data.get("steps")
    if isinstance(steps, list):
        return [(("steps", index), item) for index, item in enumerate(steps) if isinstance(item, dict)]
    if "steps" not in data and "action" in data:
        return [((), data)]
    return []


def _step_issues(prefix: Path, step: dict[str, Any], lines: LineMap) -> list[SpecIssue]:
    """Check one step's params against its action's schema, its URL, and whether it needs a `host`."""
    action = step.get("action")
    if not isinstance(action, str) or action not in ACTION_NAMES:
        return []  # the spec schema already reported the unknown action
    issues: list[SpecIssue] = []
    params = step.get("params", {})
    if isinstance(params, dict):
        params_path = prefix + ("params",)
        issues.extend(schema_issues(_params_validator(action), params, lines, params_path, _params_wording(action)))
        url = params.get("url")
        url_path = format_path(params_path + ("url",))
        if action == "http_check" and isinstance(url, str) and not any(i.path == url_path for i in issues):
            problem = check_http_url(url)
            if problem:
                issues.append(SpecIssue(url_path, problem, lines.value_line_of(params_path + ("url",))))

    runs_on = action_runs_on(action)
    host_path = prefix + ("host",)
    if runs_on == "ssh" and "host" not in step:
        message = f"missing `host` for {action}: name the inventory host it runs on"
        issues.append(SpecIssue(format_path(host_path), message, lines.line_of(prefix + ("action",))))
    if runs_on == "runner" and "host" in step:
        message = f"`host` is not allowed for {action}, which runs on the glpibot host itself; remove it"
        issues.append(SpecIssue(format_path(host_path), message, lines.line_of(host_path)))
    return issues


def _document_issues(data: Any, lines: LineMap) -> list[SpecIssue]:
    if data is None:
        return [SpecIssue("", "the spec is empty; write it as a YAML mapping, for example:\n" + MINIMAL_EXAMPLE)]
    if not isinstance(data, dict):
        value_text = shown_value((), data, lines)
        return [SpecIssue("", f"the spec must be a YAML mapping that starts with `glpibot: 1`; got {value_text}", 1)]
    issues = schema_issues(_spec_validator(), data, lines, (), _SPEC_WORDING)
    version = data.get("glpibot")
    if "glpibot" in data and type(version) is not int and not any(issue.path == "glpibot" for issue in issues):
        # jsonschema counts 1.0 as the integer 1; the version must be written 1.
        typed = lines.raw.get(("glpibot",), str(version))
        message = f"glpibot must be 1 (the spec format version); got `{typed}`"
        issues.append(SpecIssue("glpibot", message, lines.line_of(("glpibot",))))
    for prefix, step in _step_entries(data):
        issues.extend(_step_issues(prefix, step, lines))
    return issues


def _key_lines(lines: LineMap, single_action: bool) -> dict[Path, dict[str, int]]:
    """Group key lines by step prefix, each keyed by its path relative to the step ("params.url").

    A path keeps its key line, and a path without a key keeps the line its
    value starts on. This is one pass over the LineMap, so a spec with many
    steps costs linear time.
    """
    grouped: dict[Path, dict[str, int]] = {}
    for table in (lines, lines.value_lines):
        for path, line in table.items():
            if single_action and path and path[0] in _STEP_KEYS:
                prefix: Path = ()
            elif len(path) > 2 and path[0] == "steps" and isinstance(path[1], int):
                prefix = path[:2]
            else:
                continue
            grouped.setdefault(prefix, {}).setdefault(format_path(path[len(prefix):]), line)
    return grouped


def _sort_key(issue: SpecIssue) -> tuple[int, str]:
    return (issue.line if issue.line is not None else 0, issue.path)


def parse_spec(text: str) -> Spec:
    """Load the YAML text of a spec strictly, validate it, and return the Spec.

    Raises SpecError with every issue of every step at once; raises nothing else.
    """
    data, lines = load_yaml(text)
    issues = _document_issues(data, lines)
    if issues:
        raise SpecError(sorted(issues, key=_sort_key))

    reason = data.get("reason")
    key_lines = _key_lines(lines, single_action="steps" not in data)
    steps = [
        Step(
            index=prefix[1] if prefix else 0,
            action=step["action"],
            params=dict(step.get("params") or {}),
            host=step.get("host"),
            path=format_path(prefix),
            line=lines.get(prefix) if prefix else lines.get(("action",)),
            lines=key_lines.get(prefix, {}),
        )
        for prefix, step in _step_entries(data)
    ]
    logger.debug("spec valid: %d steps (%s)", len(steps), ", ".join(step.action for step in steps))
    return Spec(version=1, steps=steps, reason=reason, source=text)


def parse_ticket_body(body: str) -> Spec:
    """Find the spec in a ticket body (HTML or plain text) and return it validated; raises SpecError."""
    return parse_spec(extract_spec_text(body))


def validate_text(text: str, config: Config | None = None) -> list[SpecIssue]:
    """Return every issue of a spec file or ticket body, for `glpibot validate-spec`; [] when it is valid.

    HTML, or text with a ```yaml fence, goes through extract_spec_text first;
    anything else is read as YAML. With a config, policy issues are added once
    the schema passes.
    """
    try:
        yaml_text = text
        if isinstance(text, str) and (looks_like_html(text) or has_spec_fence(text)):
            yaml_text = extract_spec_text(text)
        spec = parse_spec(yaml_text)
    except SpecError as exc:
        return exc.issues
    if config is None:
        return []
    from glpibot.policy import policy_issues

    return policy_issues(spec, config)
