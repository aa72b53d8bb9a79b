"""The command line through its entry point: validate-spec, list-actions, usage errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).parent / "data" / "cases"


def glpibot(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "glpibot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_validate_duplicate_keys_lists_both() -> None:
    result = glpibot("validate-spec", str(CASES / "duplicate-keys-spec.yaml"))

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert any("duplicate key `operation` at line 7 (first at line 6)" in line for line in lines)
    assert any("duplicate key `host` at line 9 (first at line 3)" in line for line in lines)


def test_validate_bad_urls_every_step() -> None:
    result = glpibot("validate-spec", str(CASES / "bad-urls-spec.yaml"), "--json")

    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False
    paths = {error["path"] for error in report["errors"]}
    for index in range(6):
        assert any(path.startswith(f"steps[{index}].params") for path in paths), index
    assert all(error["line"] for error in report["errors"])
    assert all("\n" not in error["message"] for error in report["errors"])
    assert any("unknown parameter `expect_staus` for http_check" in error["message"] for error in report["errors"])


def test_validate_yes_no_stays_text() -> None:
    result = glpibot("validate-spec", str(CASES / "yes-no-on-off-spec.yaml"))

    assert result.returncode == 0, result.stdout
    assert "valid" in result.stdout


def test_validate_reads_stdin_html() -> None:
    body = (CASES / "wiki-check-ticket-plain.html").read_text()

    result = glpibot("validate-spec", "-", stdin=body)

    assert result.returncode == 0, result.stdout


def test_validate_no_spec_found() -> None:
    result = glpibot("validate-spec", "-", stdin="<p>Hello, please restart the wiki</p>")

    assert result.returncode == 1
    assert "no spec found" in result.stdout.lower()


def test_validate_with_policy(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "glpi: {url: 'http://127.0.0.1:9', client_id: x, username: bot, category: 2}\n"
        "actions: {http_check: {allowed_urls: ['https://*.home.arpa/*']}}\n"
    )
    spec = 'glpibot: 1\naction: http_check\nparams:\n  url: "https://evil.test/"\n'

    result = glpibot("validate-spec", "-", "--config", str(config), stdin=spec)

    assert result.returncode == 1
    assert "actions.http_check.allowed_urls" in result.stdout


def test_validate_missing_file() -> None:
    result = glpibot("validate-spec", "/nonexistent/spec.yaml")

    assert result.returncode == 2
    assert "/nonexistent/spec.yaml" in result.stderr


def test_validate_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"glpibot: 1\nreason: caf\xe9\n")

    result = glpibot("validate-spec", str(path))

    assert result.returncode == 2
    assert "UTF-8" in result.stderr


def test_list_actions_json_has_five() -> None:
    result = glpibot("list-actions", "--json")

    assert result.returncode == 0
    actions = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert set(actions) == {
        "http_check",
        "path_exists",
        "docker_container_check",
        "docker_compose_remote",
        "systemd_remote",
    }
    assert actions["http_check"]["runs_on"] == "runner"
    assert actions["path_exists"]["changes_state"] == "no"
    assert actions["systemd_remote"]["changes_state"] == "yes, except status, is-active"
    assert {param["name"] for param in actions["systemd_remote"]["params"]} == {"unit", "operation"}
    assert actions["systemd_remote"]["needs_host"] is True
    assert actions["http_check"]["needs_host"] is False


def test_list_actions_table() -> None:
    result = glpibot("list-actions")

    assert result.returncode == 0
    for name in ("http_check", "path_exists", "docker_container_check", "docker_compose_remote", "systemd_remote"):
        assert name in result.stdout
    assert "\x1b[" not in result.stdout


@pytest.mark.parametrize("command", ["poll", "doctor"])
def test_missing_config_exits_2(command: str, tmp_path: Path) -> None:
    result = glpibot(command, "--config", str(tmp_path / "absent.yaml"))

    assert result.returncode == 2
    assert "not found" in result.stderr
    assert "absent.yaml" in result.stderr


def test_unknown_config_key_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("glpi: {url: 'http://127.0.0.1:9', client_id: x, username: bot, category: 2, colour: red}\n")

    result = glpibot("poll", "--config", str(config))

    assert result.returncode == 2
    assert "unknown key glpi.colour" in result.stderr


def test_config_from_environment(tmp_path: Path) -> None:
    import os

    env = dict(os.environ)
    env["GLPIBOT_CONFIG"] = str(tmp_path / "from-env.yaml")

    result = glpibot("poll", env=env)

    assert result.returncode == 2
    assert "from-env.yaml" in result.stderr
