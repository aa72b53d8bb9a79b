"""Spec validation: schema messages in the spec's own terms, URL rules, host rules and the built Spec."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from glpibot.actions import ACTION_NAMES
from glpibot.errors import SpecError, SpecIssue
from glpibot.resources import load_action_schema, load_schema
from glpibot.spec.validate import action_runs_on, check_http_url, parse_spec, validate_text

DATA = Path(__file__).parent / "data"
HTTP_PARAMS = "url, method, expect_status, expect_body_contains, timeout_s, verify_tls, follow_redirects"
AVAILABLE = "http_check, path_exists, docker_container_check, docker_compose_remote, systemd_remote"
STATUS_RULE = "must be an integer from 100 to 599 (or a list of them)"


def _issues(text: str) -> list[tuple[str, str, int | None]]:
    with pytest.raises(SpecError) as raised:
        parse_spec(text)
    assert raised.value.kind == "invalid"
    return [(issue.path, issue.message, issue.line) for issue in raised.value.issues]


def _http_spec(params: str, extra: str = "") -> str:
    return f"glpibot: 1\naction: http_check\n{extra}params:\n{params}"


# --- the three case specs ----------------------------------------------------


def test_bad_urls_all_rejected_together() -> None:
    text = (DATA / "cases" / "bad-urls-spec.yaml").read_text(encoding="utf-8")
    assert _issues(text) == [
        ("steps[0].params.url", "url must start with http:// or https://", 6),
        ("steps[1].params.url", "url scheme `file` is not allowed; url must start with http:// or https://", 10),
        ("steps[2].params.url", "port 99999 is out of range 1-65535", 14),
        ("steps[3].params.url", "url must not contain spaces; encode them as %20", 18),
        (
            "steps[3].params.expect_status",
            f'{STATUS_RULE}; got `"200"`, which is text; write 200 without quotes',
            19,
        ),
        (
            "steps[4].params.url",
            "url has an IPv6 address without its closing `]`; write it as http://[2001:db8::1]:8080/health",
            22,
        ),
        ("steps[4].params.expect_status", f"{STATUS_RULE}; got `2000`", 23),
        (
            "steps[5].params.expect_staus",
            f"unknown parameter `expect_staus` for http_check; allowed: {HTTP_PARAMS}; did you mean `expect_status`?",
            27,
        ),
    ]


def test_yes_no_on_off_stay_text() -> None:
    spec = parse_spec((DATA / "cases" / "yes-no-on-off-spec.yaml").read_text(encoding="utf-8"))
    assert spec.steps[0].params["expect_body_contains"] == "yes"
    assert spec.steps[1].params["expect_body_contains"] == "off"
    assert spec.steps[2].host == "no"
    assert [step.line for step in spec.steps] == [4, 9, 14]


def test_duplicate_keys_two_errors() -> None:
    text = (DATA / "cases" / "duplicate-keys-spec.yaml").read_text(encoding="utf-8")
    assert _issues(text) == [
        ("params.operation", "duplicate key `operation` at line 7 (first at line 6)", 7),
        ("host", "duplicate key `host` at line 9 (first at line 3)", 9),
    ]


# --- valid specs build the whole Spec ----------------------------------------


def test_single_action_spec() -> None:
    spec = parse_spec((DATA / "specs" / "single-action.yaml").read_text(encoding="utf-8"))
    assert spec.version == 1
    assert spec.reason == "pick up the new media path"
    assert [dataclasses.asdict(step) for step in spec.steps] == [
        {
            "index": 0,
            "action": "systemd_remote",
            "params": {"unit": "jellyfin.service", "operation": "restart"},
            "host": "svc-auto",
            "path": "",
            "line": 2,
            "lines": {"action": 2, "host": 3, "params": 4, "params.unit": 5, "params.operation": 6},
        }
    ]


def test_every_action_spec() -> None:
    text = (DATA / "specs" / "every-action.yaml").read_text(encoding="utf-8")
    spec = parse_spec(text)
    assert spec.source == text
    assert [(step.index, step.action, step.host, step.path, step.line) for step in spec.steps] == [
        (0, "http_check", None, "steps[0]", 5),
        (1, "path_exists", "svc-auto", "steps[1]", 13),
        (2, "docker_container_check", "svc-auto", "steps[2]", 16),
        (3, "docker_compose_remote", "svc-auto", "steps[3]", 19),
        (4, "systemd_remote", "2024-06-01", "steps[4]", 25),
    ]
    assert spec.steps[0].params == {
        "url": "https://wiki.example.test:8443/health?full=1&db=1",
        "method": "HEAD",
        "expect_status": [200, 204],
        "timeout_s": 2.5,
        "verify_tls": False,
        "follow_redirects": True,
    }
    assert spec.steps[3].params == {"project": "wiki", "operation": "restart", "services": ["web", "db"]}


def test_three_steps_spec() -> None:
    spec = parse_spec((DATA / "specs" / "three-steps.yaml").read_text(encoding="utf-8"))
    assert [(step.action, step.params.get("operation")) for step in spec.steps] == [
        ("docker_compose_remote", "pull"),
        ("docker_compose_remote", "up"),
        ("http_check", None),
    ]


def test_ipv6_url_and_off_text() -> None:
    spec = parse_spec((DATA / "specs" / "http-check-ipv6.yaml").read_text(encoding="utf-8"))
    assert spec.steps[0].params == {"url": "http://[::1]:8080/health", "expect_body_contains": "off"}


def test_params_not_shared_with_source() -> None:
    spec = parse_spec(_http_spec("  url: https://wiki.example.test/\n"))
    assert spec.steps[0].params == {"url": "https://wiki.example.test/"}
    assert spec.steps[0].host is None


# --- top-level messages ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "glpibot: 2\naction: http_check\nparams: {url: 'https://x.example.test/'}\n",
            [("glpibot", "glpibot must be 1 (the spec format version); got `2`", 1)],
        ),
        (
            "glpibot: 1.0\naction: http_check\nparams: {url: 'https://x.example.test/'}\n",
            [("glpibot", "glpibot must be 1 (the spec format version); got `1.0`", 1)],
        ),
        (
            "glpibot: '1'\naction: http_check\nparams: {url: 'https://x.example.test/'}\n",
            [("glpibot", "glpibot must be 1 (the spec format version); got `'1'`, which is text; write 1 without quotes", 1)],
        ),
        (
            "action: http_check\nparams: {url: 'https://x.example.test/'}\n",
            [("glpibot", "missing `glpibot: 1` (the spec format version) at the top of the spec", 1)],
        ),
        (
            "glpibot: 1\nreason: nothing to do\n",
            [("", "missing `action` or `steps`: the spec needs one action, or a list of steps under `steps`", 1)],
        ),
        (
            "glpibot: 1\naction: http_check\nsteps:\n  - action: http_check\n    params: {url: 'https://x.example.test/'}\n",
            [("steps", "use either `action` (one step) or `steps` (a list of steps), not both", 3)],
        ),
        (
            "glpibot: 1\nhost: web\nsteps:\n  - action: http_check\n    params: {url: 'https://x.example.test/'}\n",
            [("host", "`host` goes inside each step when the spec uses `steps`", 2)],
        ),
        (
            "glpibot: 1\naction: restart_all\n",
            [("action", f"unknown action `restart_all`; available: {AVAILABLE}", 2)],
        ),
        (
            "glpibot: 1\naction: [http_check]\n",
            [("action", f"must be the name of an action; got a list of 1 item; available: {AVAILABLE}", 2)],
        ),
        (
            "glpibot: 1\nsteps: []\n",
            [("steps", "must be a list of 1 to 20 steps, each with `action` and `params`; got an empty list", 2)],
        ),
        (
            "glpibot: 1\naction: http_check\nparams: {url: 'https://x.example.test/'}\nreason: " + "x" * 501 + "\n",
            [("reason", "must be text of at most 500 characters; got 501 characters", 4)],
        ),
        (
            "glpibot: 1\naction: http_check\nparams: {url: 'https://x.example.test/'}\nnote: hi\n",
            [("note", "unknown key `note`; allowed: glpibot, reason, action, host, params, steps", 4)],
        ),
        (
            "glpibot: 1\nsteps:\n  - acton: http_check\n",
            [
                ("steps[0].acton", "unknown key `acton` in a step; allowed: action, host, params; did you mean `action`?", 3),
                ("steps[0].action", f"missing `action` in the step; available: {AVAILABLE}", 3),
            ],
        ),
        (
            "glpibot: 1\nsteps:\n  - http_check\n",
            [("steps[0]", "must be a mapping with `action`, `host` and `params`; got `http_check`", 3)],
        ),
        (
            "- glpibot: 1\n",
            [("", "the spec must be a YAML mapping that starts with `glpibot: 1`; got a list of 1 item", 1)],
        ),
        ("", [("", "the spec is empty; write it as a YAML mapping, for example:\n```yaml\nglpibot: 1\naction: http_check\nparams:\n  url: https://wiki.example.test/health\n```", None)]),
    ],
)
def test_top_level_messages(text: str, expected: list[tuple[str, str, int | None]]) -> None:
    assert sorted(_issues(text)) == sorted(expected)


def test_too_many_steps() -> None:
    step = "  - action: http_check\n    params: {url: 'https://x.example.test/'}\n"
    issues = _issues("glpibot: 1\nsteps:\n" + step * 21)
    assert issues == [("steps", "must be a list of 1 to 20 steps, each with `action` and `params`; got a list of 21 items", 2)]


# --- params messages ---------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("  url: https://x.example.test/\n  method: POST\n", ("params.method", "must be one of: GET, HEAD; got `POST`", 5)),
        ("  url: https://x.example.test/\n  expect_status: '200'\n", ("params.expect_status", f"{STATUS_RULE}; got `'200'`, which is text; write 200 without quotes", 5)),
        ("  url: https://x.example.test/\n  expect_status: 99\n", ("params.expect_status", f"{STATUS_RULE}; got `99`", 5)),
        ("  url: https://x.example.test/\n  expect_status: 017\n", ("params.expect_status", f"{STATUS_RULE}; got `017`", 5)),
        ("  url: https://x.example.test/\n  expect_status: true\n", ("params.expect_status", f"{STATUS_RULE}; got `true`", 5)),
        ("  url: https://x.example.test/\n  expect_status: [200, 700]\n", ("params.expect_status[1]", "must be an integer from 100 to 599; got `700`", 5)),
        ("  url: https://x.example.test/\n  expect_status: [200, 200]\n", ("params.expect_status", "must be a list of 1 to 20 different status codes; got `200` more than once", 5)),
        ("  url: https://x.example.test/\n  expect_status: []\n", ("params.expect_status", "must be a list of 1 to 20 different status codes; got an empty list", 5)),
        ("  url: https://x.example.test/\n  timeout_s: 0\n", ("params.timeout_s", "must be a number of seconds greater than 0 and at most 120; got `0`", 5)),
        ("  url: https://x.example.test/\n  timeout_s: 10s\n", ("params.timeout_s", "must be a number of seconds greater than 0 and at most 120; got `10s`", 5)),
        ("  url: https://x.example.test/\n  verify_tls: no\n", ("params.verify_tls", "must be true or false; got `no`; write true or false", 5)),
        ("  url: https://x.example.test/\n  expect_body_contains: ''\n", ("params.expect_body_contains", "must be non-empty text of at most 1000 characters; got `''`", 5)),
        ("  url: 8080\n", ("params.url", "must be non-empty text of at most 2048 characters; got `8080`", 4)),
        ("  method: GET\n", ("params.url", "missing required parameter `url` for http_check", 3)),
    ],
)
def test_http_check_param_messages(params: str, expected: tuple[str, str, int]) -> None:
    assert _issues(_http_spec(params)) == [expected]


def test_params_null_message() -> None:
    assert _issues("glpibot: 1\naction: http_check\nparams:\n") == [
        ("params", "must be a mapping of parameter names to values; got nothing", 3)
    ]


@pytest.mark.parametrize(
    ("action", "params", "expected"),
    [
        ("systemd_remote", "{unit: nginx, operation: status}", ("params.unit", "must be a full unit name with its suffix (.service, .socket, .timer, .target, .mount or .path), for example nginx.service; got `nginx`")),
        ("systemd_remote", "{unit: nginx.service, operation: bounce}", ("params.operation", "must be one of: status, is-active, start, stop, restart, reload; got `bounce`")),
        ("systemd_remote", "{unit: nginx.service}", ("params.operation", "missing required parameter `operation` for systemd_remote")),
        ("docker_compose_remote", "{project: Grafana, operation: up}", ("params.project", "must be a compose project name: lowercase letters, digits, `_` and `-`, at most 64 characters; got `Grafana`")),
        ("docker_compose_remote", "{project: grafana, operation: up, services: [web, 'a b']}", ("params.services[1]", "must be a service name: letters, digits, `.`, `_` and `-`, at most 64 characters; got `'a b'`")),
        ("docker_container_check", "{container: wiki-web-1, expect: up}", ("params.expect", "must be one of: running, healthy; got `up`")),
        ("path_exists", "{path: srv/media}", ("params.path", "must be an absolute path starting with `/`, without control characters or backslashes, at most 4096 characters; got `srv/media`")),
        ("path_exists", "{path: /srv, kind: folder}", ("params.kind", "must be one of: file, directory, any; got `folder`")),
        ("path_exists", "{path: /srv, mode: 0755}", ("params.mode", "unknown parameter `mode` for path_exists; allowed: path, kind")),
    ],
)
def test_ssh_action_param_messages(action: str, params: str, expected: tuple[str, str]) -> None:
    text = f"glpibot: 1\naction: {action}\nhost: svc-auto\nparams: {params}\n"
    assert [(path, message) for path, message, _ in _issues(text)] == [expected]


def test_host_required_for_ssh_actions() -> None:
    text = "glpibot: 1\nsteps:\n  - action: path_exists\n    params: {path: /srv}\n"
    assert _issues(text) == [("steps[0].host", "missing `host` for path_exists: name the inventory host it runs on", 3)]


def test_host_forbidden_for_http_check() -> None:
    text = "glpibot: 1\nsteps:\n  - action: http_check\n    host: web\n    params: {url: 'https://x.example.test/'}\n"
    assert _issues(text) == [
        ("steps[0].host", "`host` is not allowed for http_check, which runs on the glpibot host itself; remove it", 4)
    ]


def test_host_name_shape() -> None:
    text = "glpibot: 1\naction: path_exists\nhost: 'web 01'\nparams: {path: /srv}\n"
    assert _issues(text) == [
        ("host", "must be an inventory host name: letters, digits, `.`, `_` and `-`, at most 63 characters; got `'web 01'`", 3)
    ]


def test_all_steps_reported_at_once() -> None:
    text = (
        "glpibot: 1\nsteps:\n"
        "  - action: http_check\n    params: {url: 'ftp://x/'}\n"
        "  - action: systemd_remote\n    params: {unit: a.service, operation: kill}\n"
        "  - action: nope\n"
    )
    paths = [path for path, _, _ in _issues(text)]
    assert paths == ["steps[0].params.url", "steps[1].host", "steps[1].params.operation", "steps[2].action"]


def test_messages_are_one_line() -> None:
    texts = [
        (DATA / "cases" / "bad-urls-spec.yaml").read_text(encoding="utf-8"),
        "glpibot: 1\nsteps:\n  - {action: http_check, params: {expect_status: {a: 1}, url: [1], verify_tls: 3}}\n",
        "glpibot: [1]\nsteps: {a: 1}\naction: 3\nreason: [x]\n",
    ]
    for text in texts:
        for _, message, _ in _issues(text):
            assert "\n" not in message
            assert "is not valid under any of the given schemas" not in message
            assert "'type'" not in message


# --- URL rule ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://wiki.example.test/health?full=1&db=1",
        "http://wiki.example.test",
        "HTTPS://WIKI.EXAMPLE.TEST:443/",
        "http://127.0.0.1:8080/health",
        "http://[::1]:8080/",
        "http://[fe80::1%25eth0]/",
        "http://svc-auto/",
        "http://wiki.example.test:/x",
        "https://bücher.example.test/",
        "http://wiki.example.test/a%20b#frag",
    ],
)
def test_url_accepted(url: str) -> None:
    assert check_http_url(url) is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("wiki.example.test/health", "url must start with http:// or https://"),
        ("wiki.example.test:8080/health", "url must start with http:// or https://"),
        ("file:///srv/wiki/secret.txt", "url scheme `file` is not allowed; url must start with http:// or https://"),
        ("javascript:alert(1)", "url scheme `javascript` is not allowed; url must start with http:// or https://"),
        ("https:wiki.example.test", "url must start with http:// or https://"),
        ("https://wiki.example.test:99999/health", "port 99999 is out of range 1-65535"),
        ("https://wiki.example.test:0/", "port 0 is out of range 1-65535"),
        ("https://wiki.example.test:https/", "port `https` in url is not a number"),
        ("https://wiki.example.test/he alth", "url must not contain spaces; encode them as %20"),
        ("https://wiki.example.test/\u00a0", "url must not contain spaces; encode them as %20"),
        ("https://wiki.example.test/\n", "url must not contain control or invisible characters such as tabs or line breaks"),
        ("https://wiki.example.test/\u200b", "url must not contain control or invisible characters such as tabs or line breaks"),
        ("http://[fe80::1", "url has an IPv6 address without its closing `]`; write it as http://[2001:db8::1]:8080/health"),
        ("http://fe80::1/", "an IPv6 address in url must be in brackets, like http://[2001:db8::1]:8080/health"),
        ("http://[wiki]/", "`[wiki]` in url is not a valid IPv6 address"),
        ("http://[::1]x/", "url has `x` after the IPv6 address; only `:port` may follow `]`"),
        ("https://alice:secret@wiki.example.test/", "url must not contain a user name or password (`user:pass@`); glpibot sends no credentials in URLs"),
        ("https://", "url has no host name"),
        ("https:///path", "url has no host name"),
        ("http://999.1.1.1/", "`999.1.1.1` in url is not a valid IPv4 address"),
        ("http://wiki..example.test/", "host `wiki..example.test` in url is not a valid host name"),
        ("http://wiki_example$/", "host `wiki_example$` in url is not a valid host name"),
        ("http://wiki.example.test\\@evil.test/", "url must not contain a backslash; use / in paths"),
        ("", "url must not be empty"),
    ],
)
def test_url_rejected(url: str, message: str) -> None:
    assert check_http_url(url) == message


def test_url_huge_port_no_crash() -> None:
    assert check_http_url("http://x:" + "9" * 5000 + "/") == "port " + "9" * 57 + "... is out of range 1-65535"


# --- schemas -----------------------------------------------------------------


def test_spec_schema_lists_registry() -> None:
    assert tuple(load_schema("spec.schema.json")["$defs"]["action"]["enum"]) == ACTION_NAMES


@pytest.mark.parametrize("action", ACTION_NAMES)
def test_action_schema_metadata(action: str) -> None:
    schema = load_action_schema(action)
    assert schema["x-runs-on"] in ("runner", "ssh")
    changes = schema["x-changes-state"]
    assert changes is False or set(changes["values"]) <= set(schema["properties"][changes["param"]]["enum"])


def test_runs_on_values() -> None:
    assert {action: action_runs_on(action) for action in ACTION_NAMES} == {
        "http_check": "runner",
        "path_exists": "ssh",
        "docker_container_check": "ssh",
        "docker_compose_remote": "ssh",
        "systemd_remote": "ssh",
    }


def _keywords(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        for key, value in schema.items():
            found.add(key)
            found |= _keywords(value)
    elif isinstance(schema, list):
        for item in schema:
            found |= _keywords(item)
    return found


@pytest.mark.parametrize("name", ["spec.schema.json", *(f"actions/{action}.json" for action in ACTION_NAMES)])
def test_schemas_use_no_format(name: str) -> None:
    # jsonschema skips `format` without a checker or its optional package, so no rule may rest on it.
    assert "format" not in _keywords(load_schema(name))


def test_spec_schema_is_valid_json_schema() -> None:
    import jsonschema

    schema = json.loads((Path(__file__).parents[1] / "schemas" / "spec.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)


# --- validate_text -----------------------------------------------------------


def test_validate_text_valid_yaml() -> None:
    assert validate_text((DATA / "specs" / "three-steps.yaml").read_text(encoding="utf-8")) == []


def test_validate_text_duplicate_keys() -> None:
    issues = validate_text((DATA / "cases" / "duplicate-keys-spec.yaml").read_text(encoding="utf-8"))
    assert [str(issue) for issue in issues] == [
        "params.operation (line 7): duplicate key `operation` at line 7 (first at line 6)",
        "host (line 9): duplicate key `host` at line 9 (first at line 3)",
    ]


def test_validate_text_html_body() -> None:
    body = (DATA / "cases" / "wiki-check-ticket-plain.html").read_text(encoding="utf-8")
    assert validate_text(body) == []


def test_validate_text_fenced_text() -> None:
    text = "Hello,\n```yaml\nglpibot: 1\naction: http_check\nparams: {url: 'ftp://x/'}\n```\nThanks"
    assert validate_text(text) == [
        SpecIssue("params.url", "url scheme `ftp` is not allowed; url must start with http:// or https://", 3)
    ]


def test_validate_text_body_without_spec() -> None:
    issues = validate_text("<p>Please fix the wiki.</p>")
    assert len(issues) == 1
    assert issues[0].message.startswith("no spec found")


def _config(allowed_urls: list[str]) -> Any:
    from glpibot.config import config_from_dict

    return config_from_dict(
        {
            "glpi": {"url": "http://127.0.0.1:9", "client_id": "c", "username": "bot", "category": 2},
            "state_dir": "/tmp/glpibot-test-state",
            "actions": {"http_check": {"allowed_urls": allowed_urls}},
        }
    )


def test_validate_text_policy_issues() -> None:
    pytest.importorskip("glpibot.actions.http_check")
    text = "glpibot: 1\naction: http_check\nparams: {url: 'https://wiki.example.test/health'}\n"
    assert validate_text(text, _config(["https://wiki.example.test/*"])) == []
    issues = validate_text(text, _config(["https://other.example.test/*"]))
    assert [issue.path for issue in issues] == ["params.url"]


def test_validate_text_schema_first() -> None:
    # With schema issues, policy is not consulted, so no handler module is needed.
    issues = validate_text("glpibot: 1\naction: http_check\n", _config([]))
    assert issues == [SpecIssue("params.url", "missing required parameter `url` for http_check", 1)]


def test_parse_spec_rejects_non_text() -> None:
    with pytest.raises(SpecError):
        parse_spec(None)  # type: ignore[arg-type]
