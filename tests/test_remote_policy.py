"""Allowlist helpers and the policy checks of the four SSH actions (no network involved)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from glpibot.actions import get_action
from glpibot.actions.base import ActionContext
from glpibot.actions.remote_policy import (
    check_remote_path,
    glob_literal_prefix,
    glob_matches,
    show_value,
    strict_param_issues,
)
from glpibot.config import Config, config_from_dict
from glpibot.policy import policy_issues
from glpibot.resources import load_action_schema
from glpibot.spec.model import Spec, Step
from tests.sshd import free_port

SSH_ACTIONS = ("path_exists", "docker_container_check", "docker_compose_remote", "systemd_remote")

ACTIONS_SECTION: dict[str, Any] = {
    "path_exists": {"allowed_paths": {"svc-auto": ["/srv/**", "/home/svc-admin/docker/*"]}},
    "docker_container_check": {"allowed_containers": {"svc-auto": ["*"]}},
    "docker_compose_remote": {
        "projects": {
            "grafana": {
                "host": "svc-auto",
                "path": "/home/svc-admin/docker/grafana",
                "operations": ["ps", "pull", "up", "restart"],
            }
        }
    },
    "systemd_remote": {
        "allowed_units": {"svc-auto": ["nginx.service", "backup@*.service"]},
        "operations": ["status", "is-active", "start", "stop", "restart", "reload"],
    },
}

# Strings a ticket author might use to break out of a command line.
INJECTIONS = [
    "x; rm -rf /",
    "$(id)",
    "`id`",
    "a\nb",
    "-rf",
    "--help",
    "a\x00b",
    "a b",
    "'quoted'",
    '"double"',
    "a|b",
    "a&&b",
    "a>b",
]


def make_config(actions: dict[str, Any] | None = None, port: int | None = None) -> Config:
    """Return a config whose two hosts point at a closed port on 127.0.0.1."""
    closed = port or free_port()
    host = {"address": "127.0.0.1", "port": closed, "user": "svc-admin", "known_hosts": "/nonexistent/known_hosts"}
    return config_from_dict(
        {
            "glpi": {"url": "http://127.0.0.1:9", "client_id": "c", "username": "glpibot", "category": "Automation"},
            "state_dir": "/nonexistent/state",
            "hosts": {"svc-auto": dict(host), "other": dict(host)},
            "actions": ACTIONS_SECTION if actions is None else actions,
        }
    )


def make_step(action: str, params: dict[str, Any], host: str | None = "svc-auto", index: int = 0) -> Step:
    return Step(index=index, action=action, params=params, host=host, path=f"steps[{index}]", line=4 + index)


def messages(action: str, params: dict[str, Any], config: Config, host: str | None = "svc-auto") -> list[str]:
    return [issue.message for issue in get_action(action).check_policy(make_step(action, params, host), config)]


# --- globs -----------------------------------------------------------------------------------------


def test_glob_star_stays_in_segment() -> None:
    assert glob_matches("/home/svc-admin/docker/*", "/home/svc-admin/docker/grafana")
    assert not glob_matches("/home/svc-admin/docker/*", "/home/svc-admin/docker/a/b")
    assert not glob_matches("/home/svc-admin/docker/*", "/home/svc-admin/docker/a/../../../etc")


def test_glob_double_star_crosses() -> None:
    assert glob_matches("/srv/**", "/srv/a/b/c.txt")
    assert glob_matches("/srv/**", "/srv/a")
    assert not glob_matches("/srv/**", "/srv")
    assert not glob_matches("/srv/**", "/srvx/a")


def test_glob_double_star_segment_may_be_empty() -> None:
    assert glob_matches("/srv/**/app.conf", "/srv/app.conf")
    assert glob_matches("/srv/**/app.conf", "/srv/a/b/app.conf")
    assert not glob_matches("/srv/**/app.conf", "/srv/a/b/other.conf")


def test_glob_question_mark_and_class() -> None:
    assert glob_matches("/srv/log?", "/srv/log1")
    assert not glob_matches("/srv/log?", "/srv/log/")
    assert glob_matches("backup@[dw]*.service", "backup@daily.service")
    assert not glob_matches("backup@[dw]*.service", "backup@monthly.service")
    assert glob_matches("backup@[!dw]*.service", "backup@monthly.service")
    assert not glob_matches("/srv/[!a]", "/srv//")


def test_glob_dot_is_literal() -> None:
    assert glob_matches("nginx.service", "nginx.service")
    assert not glob_matches("nginx.service", "nginxXservice")
    assert glob_matches("/srv/[unclosed", "/srv/[unclosed")


def test_glob_unit_template() -> None:
    assert glob_matches("backup@*.service", "backup@daily.service")
    assert not glob_matches("backup@*.service", "backup@x/../y.service")
    assert not glob_matches("backup@*.service", "backup@daily.service.d")


@given(st.text(alphabet="ab/.-", max_size=12))
def test_glob_star_never_matches_slash(segment: str) -> None:
    assert glob_matches("/base/*", "/base/" + segment) == ("/" not in segment)


@given(st.text(alphabet="ab/.-", max_size=12))
def test_glob_double_star_matches_anything(rest: str) -> None:
    assert glob_matches("/base/**", "/base/" + rest)


def test_glob_literal_prefix() -> None:
    assert glob_literal_prefix("/srv/**") == "/srv"
    assert glob_literal_prefix("/home/svc-admin/docker/*") == "/home/svc-admin/docker"
    assert glob_literal_prefix("/srv/data/file.txt") == "/srv/data"
    assert glob_literal_prefix("/srv/app-*/conf") == "/srv"


# --- paths -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/srv/data", "/srv/data"),
        ("/srv/data/", "/srv/data"),
        ("/srv/my file.txt", "/srv/my file.txt"),
        ("/srv/été", "/srv/été"),
        ("/", "/"),
    ],
)
def test_remote_path_accepted(raw: str, expected: str) -> None:
    assert check_remote_path(raw) == (expected, None)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("srv/data", "is not absolute"),
        ("/srv/../etc/shadow", "'..' segment"),
        ("/srv/a/..", "'..' segment"),
        ("/srv/./data", "write it as /srv/data"),
        ("/srv//data", "write it as /srv/data"),
        ("//srv/data", "empty segment"),
        ("/srv/data\x00", "NUL"),
        ("/srv/data\n", "line break"),
        ("/srv/da\x1bta", "control character U+001B"),
        ("/srv/da\u202eta", "U+202E"),
        ("/srv\\data", "backslash"),
        ("", "non-empty"),
    ],
)
def test_remote_path_rejected(raw: str, words: str) -> None:
    normalised, problem = check_remote_path(raw)
    assert normalised is None
    assert problem is not None
    assert words in problem


def test_show_value_escapes_line_break() -> None:
    assert show_value("a\nb") == "'a\\nb'"
    assert "\n" not in show_value("x\n" * 100)


# --- schema patterns and strict re-check ----------------------------------------------------------


def string_params() -> list[tuple[str, str]]:
    """Return (action, param) for every free-text string parameter of the SSH actions."""
    found = []
    for action in SSH_ACTIONS:
        for name, prop in load_action_schema(action).get("properties", {}).items():
            if prop.get("type") == "string" and "enum" not in prop:
                found.append((action, name))
            if prop.get("type") == "array":
                found.append((action, name))
    return found


def valid_params(action: str) -> dict[str, Any]:
    return {
        "path_exists": {"path": "/srv/data"},
        "docker_container_check": {"container": "wiki-web-1"},
        "docker_compose_remote": {"project": "grafana", "operation": "ps"},
        "systemd_remote": {"unit": "nginx.service", "operation": "status"},
    }[action]


def rejected(action: str, params: dict[str, Any]) -> bool:
    """Return True when the schema or the action's policy rejects these params."""
    validator = jsonschema.Draft202012Validator(load_action_schema(action))
    if any(True for _ in validator.iter_errors(params)):
        return True
    return bool(get_action(action).check_policy(make_step(action, params), make_config()))


def test_string_params_listed() -> None:
    assert ("path_exists", "path") in string_params()
    assert ("docker_compose_remote", "services") in string_params()
    assert len(string_params()) == 5


@pytest.mark.parametrize(("action", "param"), string_params())
@pytest.mark.parametrize("injection", INJECTIONS)
def test_injection_rejected_or_literal(action: str, param: str, injection: str) -> None:
    params = valid_params(action)
    if param == "services":
        value: Any = [injection]
    elif param == "path":
        value = "/srv/" + injection
    elif param == "unit":
        value = injection + ".service"
    else:
        value = injection
    params = {**params, param: value}
    if action == "path_exists" and "\n" not in injection and "\x00" not in injection:
        # Paths may hold any printable character; SFTP gets them byte for byte
        # (the path_exists tests stat such names on a real server).
        assert not rejected(action, params)
    else:
        assert rejected(action, params)


@pytest.mark.parametrize(
    ("action", "param", "value"),
    [
        ("systemd_remote", "unit", "nginx.service\n"),
        ("docker_container_check", "container", "wiki-web-1\n"),
        ("docker_compose_remote", "project", "grafana\n"),
        ("docker_compose_remote", "services", ["web\n"]),
        ("path_exists", "path", "/srv/data\n"),
    ],
)
def test_trailing_newline_rejected(action: str, param: str, value: Any) -> None:
    params = {**valid_params(action), param: value}
    issues = strict_param_issues(make_step(action, params), action)
    assert issues
    assert "line break" in issues[0].message
    assert issues[0].path.startswith(f"steps[0].params.{param}")


@pytest.mark.parametrize(
    ("action", "param", "value"),
    [
        ("systemd_remote", "unit", "nginx.sеrvice"),  # Cyrillic 'е' (U+0435)
        ("systemd_remote", "unit", "ngіnx.service"),  # Cyrillic 'і' (U+0456)
        ("docker_container_check", "container", "wiki-wеb-1"),
        ("docker_compose_remote", "project", "grafаna"),  # Cyrillic 'а'
        ("docker_compose_remote", "services", ["wеb"]),
    ],
)
def test_lookalike_letters_rejected(action: str, param: str, value: Any) -> None:
    params = {**valid_params(action), param: value}
    validator = jsonschema.Draft202012Validator(load_action_schema(action))
    assert list(validator.iter_errors(params))
    issues = strict_param_issues(make_step(action, params), action)
    assert "non-ASCII character U+04" in issues[0].message


# --- policy refusals --------------------------------------------------------------------------------


def test_systemd_unit_refused() -> None:
    found = messages("systemd_remote", {"unit": "sshd.service", "operation": "status"}, make_config())
    assert found == [
        "unit 'sshd.service' is not allowed on host svc-auto; add it to actions.systemd_remote.allowed_units.svc-auto"
    ]


def test_systemd_operation_refused() -> None:
    actions = json.loads(json.dumps(ACTIONS_SECTION))
    actions["systemd_remote"]["operations"] = ["status"]
    found = messages("systemd_remote", {"unit": "nginx.service", "operation": "stop"}, make_config(actions))
    assert found == ["operation 'stop' is not allowed; add it to actions.systemd_remote.operations"]


def test_systemd_operations_default() -> None:
    actions = json.loads(json.dumps(ACTIONS_SECTION))
    del actions["systemd_remote"]["operations"]
    config = make_config(actions)
    assert messages("systemd_remote", {"unit": "nginx.service", "operation": "is-active"}, config) == []
    assert messages("systemd_remote", {"unit": "nginx.service", "operation": "restart"}, config)


def test_systemd_template_glob() -> None:
    config = make_config()
    assert messages("systemd_remote", {"unit": "backup@daily.service", "operation": "start"}, config) == []
    assert messages("systemd_remote", {"unit": "backup@daily.timer", "operation": "start"}, config)


def test_systemd_other_host_refused() -> None:
    found = messages("systemd_remote", {"unit": "nginx.service", "operation": "status"}, make_config(), host="other")
    assert found == [
        "unit 'nginx.service' is not allowed on host other; add it to actions.systemd_remote.allowed_units.other"
    ]


def test_path_outside_refused() -> None:
    found = messages("path_exists", {"path": "/etc/shadow"}, make_config())
    assert len(found) == 1
    assert found[0].startswith("path '/etc/shadow' is outside actions.path_exists.allowed_paths.svc-auto")


def test_path_escape_refused() -> None:
    found = messages("path_exists", {"path": "/home/svc-admin/docker/a/../../../etc"}, make_config())
    assert "'..' segment" in found[0]


def test_path_trailing_slash_allowed() -> None:
    assert messages("path_exists", {"path": "/home/svc-admin/docker/grafana/"}, make_config()) == []


def test_container_refused_elsewhere() -> None:
    config = make_config()
    assert messages("docker_container_check", {"container": "wiki-web-1"}, config) == []
    found = messages("docker_container_check", {"container": "wiki-web-1"}, config, host="other")
    assert found == [
        "container 'wiki-web-1' is not allowed on host other; "
        "add it to actions.docker_container_check.allowed_containers.other"
    ]


def test_compose_project_wrong_host() -> None:
    found = messages("docker_compose_remote", {"project": "grafana", "operation": "ps"}, make_config(), host="other")
    assert found == ["project 'grafana' runs on host svc-auto, not on host other"]


def test_compose_operation_refused() -> None:
    found = messages("docker_compose_remote", {"project": "grafana", "operation": "down"}, make_config())
    assert found == [
        "operation 'down' is not allowed for project grafana; "
        "add it to actions.docker_compose_remote.projects.grafana.operations"
    ]


def test_compose_unknown_project() -> None:
    found = messages("docker_compose_remote", {"project": "wiki", "operation": "ps"}, make_config())
    assert found == ["project 'wiki' is not configured; add it under actions.docker_compose_remote.projects"]


def test_compose_operations_default_ps() -> None:
    actions = json.loads(json.dumps(ACTIONS_SECTION))
    del actions["docker_compose_remote"]["projects"]["grafana"]["operations"]
    config = make_config(actions)
    assert messages("docker_compose_remote", {"project": "grafana", "operation": "ps"}, config) == []
    assert messages("docker_compose_remote", {"project": "grafana", "operation": "up"}, config)


@pytest.mark.parametrize("action", SSH_ACTIONS)
def test_missing_section_allows_nothing(action: str) -> None:
    params = valid_params(action)
    assert messages(action, params, make_config(actions={}))


def test_issue_path_and_line() -> None:
    step = make_step("systemd_remote", {"unit": "sshd.service", "operation": "status"}, index=2)
    issue = get_action("systemd_remote").check_policy(step, make_config())[0]
    assert issue.path == "steps[2].params.unit"
    assert issue.line == 6


def test_policy_issues_every_step() -> None:
    spec = Spec(
        version=1,
        steps=[
            make_step("systemd_remote", {"unit": "sshd.service", "operation": "status"}, index=0),
            make_step("path_exists", {"path": "/etc/shadow"}, index=1),
            make_step("docker_compose_remote", {"project": "grafana", "operation": "down"}, index=2),
        ],
    )
    issues = policy_issues(spec, make_config())
    paths = [issue.path for issue in issues]
    assert paths == ["steps[0].params.unit", "steps[1].params.path", "steps[2].params.operation"]


# --- refusal before any connection ------------------------------------------------------------------


REFUSED_STEPS = [
    ("systemd_remote", {"unit": "sshd.service", "operation": "restart"}),
    ("path_exists", {"path": "/etc/shadow"}),
    ("docker_container_check", {"container": "wiki-web-1"}),
    ("docker_compose_remote", {"project": "grafana", "operation": "down"}),
]


@pytest.mark.parametrize(("action", "params"), REFUSED_STEPS)
def test_run_refuses_without_connecting(action: str, params: dict[str, Any], tmp_path: Path) -> None:
    from glpibot.remote.pool import SshPool

    actions = json.loads(json.dumps(ACTIONS_SECTION))
    actions["docker_container_check"]["allowed_containers"] = {"svc-auto": ["grafana-*"]}
    config = make_config(actions)
    with SshPool(config) as pool:
        result = get_action(action).run(make_step(action, params), ActionContext(config=config, ssh=pool))
        handshakes = pool.handshakes
    assert not result.ok
    assert result.summary.startswith("refused by policy: ")
    assert "connect" not in result.summary
    assert handshakes == 0


@pytest.mark.parametrize("action", SSH_ACTIONS)
def test_changes_state_flags(action: str) -> None:
    handler = get_action(action)
    assert handler.runs_on == "ssh"
    assert "\n" not in handler.description
    assert handler.changes_state(valid_params(action)) is False


@pytest.mark.parametrize("operation", ["pull", "up", "restart", "stop", "down"])
def test_compose_changes_state(operation: str) -> None:
    assert get_action("docker_compose_remote").changes_state({"project": "g", "operation": operation})


@pytest.mark.parametrize("operation", ["start", "stop", "restart", "reload"])
def test_systemd_changes_state(operation: str) -> None:
    assert get_action("systemd_remote").changes_state({"unit": "a.service", "operation": operation})


@pytest.mark.parametrize(("action", "params"), [
    ("systemd_remote", {"unit": "a.service", "operation": "is-active"}),
    ("docker_compose_remote", {"project": "g", "operation": "logs"}),
])
def test_reads_change_nothing(action: str, params: dict[str, Any]) -> None:
    assert not get_action(action).changes_state(params)


def spec_text(action: str, params: dict[str, Any]) -> str:
    """Return a one-step spec in YAML; JSON scalars are valid YAML and keep every escape."""
    lines = ["glpibot: 1", f"action: {action}", "host: svc-auto", "params:"]
    lines += [f"  {name}: {json.dumps(value)}" for name, value in params.items()]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("action", "param"), string_params())
@pytest.mark.parametrize("injection", INJECTIONS)
def test_injection_through_spec_text(action: str, param: str, injection: str) -> None:
    from glpibot.spec.validate import validate_text

    value: Any = {"services": [injection], "path": "/srv/" + injection, "unit": injection + ".service"}.get(
        param, injection
    )
    issues = validate_text(spec_text(action, {**valid_params(action), param: value}), make_config())
    if action == "path_exists" and "\n" not in injection and "\x00" not in injection:
        assert issues == []
    else:
        assert issues
