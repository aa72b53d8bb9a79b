"""Policy issues point at the line of the key they reject, not at the line where the step starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from glpibot.actions.remote_policy import strict_param_issues
from glpibot.config import Config, config_from_dict
from glpibot.errors import SpecIssue
from glpibot.spec.model import Step
from glpibot.spec.validate import parse_spec, validate_text

HOST = {"address": "127.0.0.1", "port": 22, "user": "svc-admin", "known_hosts": "/nonexistent/known_hosts"}

ACTIONS: dict[str, Any] = {
    "http_check": {"allowed_urls": ["https://*.home.arpa/*"]},
    "path_exists": {"allowed_paths": {"svc-auto": ["/srv/**"]}},
    "docker_container_check": {"allowed_containers": {"svc-auto": ["grafana"]}},
    "docker_compose_remote": {
        "projects": {
            "grafana": {"host": "svc-auto", "path": "/home/svc-admin/docker/grafana", "operations": ["ps"]},
        }
    },
    "systemd_remote": {"allowed_units": {"svc-auto": ["nginx.service"]}, "operations": ["status"]},
}

CONFIG_YAML = """\
glpi: {url: 'http://127.0.0.1:9', client_id: x, username: bot, category: 2}
state_dir: /nonexistent/state
hosts:
  svc-auto: {address: 127.0.0.1, user: svc-admin, known_hosts: /nonexistent/known_hosts}
  other: {address: 127.0.0.1, user: svc-admin, known_hosts: /nonexistent/known_hosts}
actions:
  http_check: {allowed_urls: ['https://*.home.arpa/*']}
  systemd_remote: {allowed_units: {svc-auto: [nginx.service]}, operations: [status]}
"""


def make_config() -> Config:
    """Return a config with two inventory hosts and a narrow allowlist for every action."""
    return config_from_dict(
        {
            "glpi": {"url": "http://127.0.0.1:9", "client_id": "c", "username": "glpibot", "category": "Automation"},
            "state_dir": "/nonexistent/state",
            "hosts": {"svc-auto": dict(HOST), "other": dict(HOST)},
            "actions": ACTIONS,
        }
    )


def issue_lines(text: str) -> dict[str, int | None]:
    """Return the line of each issue by its path; the paths must be distinct."""
    issues = validate_text(text, make_config())
    lines = {issue.path: issue.line for issue in issues}
    assert len(lines) == len(issues), issues
    return lines


# --- the Step helper -------------------------------------------------------------------------------


def test_step_lines_of_parsed_keys() -> None:
    spec = parse_spec(
        "glpibot: 1\n"
        "reason: check the logs\n"
        "action: docker_compose_remote\n"
        "host: svc-auto\n"
        "params:\n"
        "  project: grafana\n"
        "  operation: logs\n"
        "  services:\n"
        "    - web\n"
        "    - db\n"
    )

    lines = spec.steps[0].lines
    assert lines["action"] == 3
    assert lines["host"] == 4
    assert lines["params"] == 5
    assert lines["params.project"] == 6
    assert lines["params.operation"] == 7
    assert lines["params.services"] == 8
    assert lines["params.services[0]"] == 9
    assert lines["params.services[1]"] == 10
    assert "reason" not in lines
    assert "glpibot" not in lines


def test_step_lines_per_step() -> None:
    spec = parse_spec(
        "glpibot: 1\n"
        "steps:\n"
        "  - action: http_check\n"
        "    params: {url: 'https://a.home.arpa/',\n"
        "      method: HEAD}\n"
        "  - action: path_exists\n"
        "    host: svc-auto\n"
        "    params:\n"
        "      path:\n"
        "        /srv/a\n"
    )

    first, second = spec.steps
    assert first.lines == {"action": 3, "params": 4, "params.url": 4, "params.method": 5}
    assert second.line_of("host") == 7
    assert second.line_of("params.path") == 9  # the key's line, not the value's line 10


def test_line_of_falls_back_to_step() -> None:
    step = Step(index=0, action="http_check", params={"url": "https://a.home.arpa/"}, line=7, lines={"params.url": 9})

    assert step.line_of("params.url") == 9
    assert step.line_of("params.method") == 7
    assert Step(index=0, action="http_check", params={}).line_of("host") is None


def test_step_equality_ignores_lines() -> None:
    parsed = parse_spec("glpibot: 1\naction: http_check\nparams:\n  url: 'https://a.home.arpa/'\n").steps[0]
    built = Step(index=0, action="http_check", params={"url": "https://a.home.arpa/"}, line=2)

    assert parsed == built
    assert parsed.lines != built.lines


# --- http_check ------------------------------------------------------------------------------------


def test_http_url_block_style() -> None:
    lines = issue_lines("glpibot: 1\nreason: x\naction: http_check\nparams:\n  url: 'https://evil.test/'\n")

    assert lines == {"params.url": 5}


def test_http_url_flow_style() -> None:
    lines = issue_lines("glpibot: 1\n\naction: http_check\nparams: {url: 'https://evil.test/'}\n")

    assert lines == {"params.url": 4}


def test_http_url_flow_multiline() -> None:
    text = "glpibot: 1\naction: http_check\nparams: {\n  method: GET,\n  url: 'https://evil.test/'\n}\n"

    lines = issue_lines(text)

    assert lines == {"params.url": 5}


def test_http_head_with_body() -> None:
    text = (
        "glpibot: 1\n"
        "action: http_check\n"
        "params:\n"
        "  method: HEAD\n"
        "  url: 'https://wiki.home.arpa/'\n"
        "  expect_body_contains: ok\n"
    )

    lines = issue_lines(text)

    assert lines == {"params.expect_body_contains": 6}


def test_http_url_in_second_step() -> None:
    text = (
        "glpibot: 1\n"
        "steps:\n"
        "  - action: http_check\n"
        "    params:\n"
        "      url: 'https://wiki.home.arpa/'\n"
        "  - action: http_check\n"
        "    params:\n"
        "      expect_status: 200\n"
        "      url: 'http://wiki.home.arpa/'\n"
    )

    lines = issue_lines(text)

    assert lines == {"steps[1].params.url": 9}


# --- the inventory ---------------------------------------------------------------------------------


def test_unknown_host_single_action() -> None:
    text = "glpibot: 1\naction: path_exists\nparams:\n  path: /srv/a\nhost: nowhere\n"

    lines = issue_lines(text)

    assert lines == {"host": 5}


def test_unknown_host_each_step() -> None:
    text = (
        "glpibot: 1\n"
        "steps:\n"
        "  - action: path_exists\n"
        "    host: nowhere\n"
        "    params: {path: /srv/a}\n"
        "  - action: systemd_remote\n"
        "    host: elsewhere\n"
        "    params: {unit: nginx.service, operation: status}\n"
    )

    lines = issue_lines(text)

    assert lines["steps[0].host"] == 4
    assert lines["steps[1].host"] == 7
    assert len(lines) == 2


# --- SSH actions -----------------------------------------------------------------------------------


def test_path_outside_allowlist() -> None:
    text = "glpibot: 1\naction: path_exists\nhost: svc-auto\nparams:\n  kind: file\n  path: /etc/passwd\n"

    lines = issue_lines(text)

    assert lines == {"params.path": 6}


def test_path_with_dot_segment() -> None:
    text = "glpibot: 1\naction: path_exists\nhost: svc-auto\nparams: {kind: any,\n  path: /srv/./a}\n"

    lines = issue_lines(text)

    assert lines == {"params.path": 5}


def test_container_not_allowed() -> None:
    text = (
        "glpibot: 1\n"
        "steps:\n"
        "  - action: docker_container_check\n"
        "    host: svc-auto\n"
        "    params:\n"
        "      expect: running\n"
        "      container: postgres\n"
    )

    lines = issue_lines(text)

    assert lines == {"steps[0].params.container": 7}


def test_compose_unknown_project() -> None:
    text = "glpibot: 1\naction: docker_compose_remote\nhost: svc-auto\nparams:\n  operation: ps\n  project: wiki\n"

    lines = issue_lines(text)

    assert lines == {"params.project": 6}


def test_compose_host_and_operation() -> None:
    text = (
        "glpibot: 1\n"
        "steps:\n"
        "  - action: docker_compose_remote\n"
        "    params:\n"
        "      project: grafana\n"
        "      operation: restart\n"
        "    host: other\n"
    )

    lines = issue_lines(text)

    assert lines["steps[0].host"] == 7
    assert lines["steps[0].params.operation"] == 6
    assert len(lines) == 2


def test_systemd_operation_and_unit() -> None:
    text = (
        "glpibot: 1\n"
        "action: systemd_remote\n"
        "host: svc-auto\n"
        "params:\n"
        "  unit: cron.service\n"
        "  operation: restart\n"
    )

    lines = issue_lines(text)

    assert lines["params.operation"] == 6
    assert lines["params.unit"] == 5
    assert len(lines) == 2


def test_systemd_operation_flow_style() -> None:
    text = "glpibot: 1\naction: systemd_remote\nhost: svc-auto\nparams: {unit: nginx.service, operation: stop}\n"

    lines = issue_lines(text)

    assert lines == {"params.operation": 4}


def test_strict_pattern_lines() -> None:
    # The spec schema already rejects these values, so this builds the Step the
    # way parse_spec would and checks the whole-string recheck on its own.
    step = Step(
        index=0,
        action="docker_compose_remote",
        params={"project": "grafana\n", "operation": "ps", "services": ["web", "db\n"]},
        host="svc-auto",
        line=3,
        lines={"params.project": 5, "params.operation": 6, "params.services[0]": 8, "params.services[1]": 9},
    )

    issues = strict_param_issues(step, "docker_compose_remote")

    by_path = {issue.path: issue.line for issue in issues}
    assert by_path["params.project"] == 5
    assert by_path["params.services[1]"] == 9
    assert len(by_path) == 2


def test_issue_paths_unchanged() -> None:
    text = "glpibot: 1\naction: systemd_remote\nhost: svc-auto\nparams:\n  unit: nginx.service\n  operation: restart\n"

    issues = validate_text(text, make_config())

    assert issues == [
        SpecIssue("params.operation", "operation 'restart' is not allowed; add it to actions.systemd_remote.operations", 6)
    ]


# --- the command line ------------------------------------------------------------------------------


def run_validate(spec: Path, config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "glpibot", "validate-spec", str(spec), "--config", str(config), *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_prints_key_lines(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG_YAML)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "glpibot: 1\n"
        "steps:\n"
        "  - action: http_check\n"
        "    params:\n"
        "      url: 'https://evil.test/'\n"
        "  - action: systemd_remote\n"
        "    host: svc-auto\n"
        "    params:\n"
        "      unit: nginx.service\n"
        "      operation: restart\n"
    )

    result = run_validate(spec, config)

    assert result.returncode == 1, result.stderr
    output = result.stdout.splitlines()
    assert any(line.startswith("steps[0].params.url (line 5): ") for line in output), output
    assert any(line.startswith("steps[1].params.operation (line 10): ") for line in output), output
    assert len(output) == 2


def test_cli_json_key_lines(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG_YAML)
    spec = tmp_path / "spec.yaml"
    spec.write_text("glpibot: 1\naction: path_exists\nparams:\n  path: /srv/a\nhost: nowhere\n")

    result = run_validate(spec, config, "--json")

    assert result.returncode == 1, result.stderr
    errors = json.loads(result.stdout)["errors"]
    assert [(error["path"], error["line"]) for error in errors] == [("host", 5)]
