"""Whole passes with remote actions: the GLPI simulator and a real sshd with stand-in tools."""

from __future__ import annotations

import json
import threading
from typing import Any

from glpibot.exitcodes import ExitCode
from tests.botenv import BotEnv
from tests.sshd import SshdHandle

PROJECT_DIR = "/home/svc-admin/docker/grafana"


def remote_setup(bot: BotEnv, sshd: SshdHandle, *, sudo: bool = False) -> None:
    """Point the bot's config at the test sshd as host svc-auto, with allowlists for every action."""
    bot.overrides["hosts"] = {"svc-auto": sshd.host_entry(sudo=sudo)}
    bot.overrides["actions"] = {
        "http_check": {"allowed_urls": ["http://127.0.0.1:*/*"]},
        "path_exists": {"allowed_paths": {"svc-auto": [f"{sshd.test_dir}/**"]}},
        "docker_container_check": {"allowed_containers": {"svc-auto": ["wiki-*"]}},
        "docker_compose_remote": {
            "projects": {"grafana": {"host": "svc-auto", "path": PROJECT_DIR, "operations": ["ps", "pull", "up"]}}
        },
        "systemd_remote": {
            "allowed_units": {"svc-auto": ["nginx.service", "backup@*.service"]},
            "operations": ["status", "is-active", "restart"],
        },
    }
    sshd.set_scenario(
        "systemctl-units.json",
        json.dumps({"nginx.service": {"LoadState": "loaded", "ActiveState": "active", "SubState": "running"}}),
    )
    sshd.set_scenario(
        "docker-containers.json",
        json.dumps(
            {
                "wiki-web-1": {
                    "Status": "running",
                    "Running": True,
                    "OOMKilled": False,
                    "ExitCode": 0,
                    "StartedAt": "2024-06-01T10:00:00.000000000Z",
                }
            }
        ),
    )
    sshd.set_scenario(
        "compose-projects.json",
        json.dumps(
            {PROJECT_DIR: {"name": "grafana", "services": {"web": {"State": "running", "Health": "", "ExitCode": 0}}}}
        ),
    )


def _spec(action: str, params: dict[str, Any], host: str | None = "svc-auto") -> str:
    lines = ["glpibot: 1", f"action: {action}"]
    if host:
        lines.append(f"host: {host}")
    lines.append("params:")
    lines.extend(f"  {key}: {json.dumps(value)}" for key, value in params.items())
    return "\n".join(lines) + "\n"


def _calls(sshd: SshdHandle, tool: str) -> list[list[str]]:
    return [call for call in sshd.calls() if call and call[0] == tool]


def test_pass_runs_all_five_actions(bot: BotEnv, sshd: SshdHandle) -> None:
    remote_setup(bot, sshd)
    probe = sshd.test_dir / "probe.txt"
    probe.write_text("hello")
    tickets = {
        "http": bot.ticket("http", _spec("http_check", {"url": f"{bot.sim.url}/health"}, host=None)),
        "path": bot.ticket("path", _spec("path_exists", {"path": str(probe), "kind": "file"})),
        "container": bot.ticket("container", _spec("docker_container_check", {"container": "wiki-web-1"})),
        "compose": bot.ticket("compose", _spec("docker_compose_remote", {"project": "grafana", "operation": "up"})),
        "systemd": bot.ticket("systemd", _spec("systemd_remote", {"unit": "nginx.service", "operation": "restart"})),
        "missing": bot.ticket("missing", _spec("path_exists", {"path": str(sshd.test_dir / "nope")})),
    }

    summary = bot.run()

    assert summary.exit_code == ExitCode.OK
    for label in ("http", "path", "container", "compose", "systemd"):
        assert bot.status(tickets[label]) == 5, label
        assert (bot.artifact_dir / f"ticket-{tickets[label]}.md").is_file(), label
    assert bot.status(tickets["missing"]) == 4
    assert "does not exist" in bot.sim.followups(tickets["missing"])[-1]["content"]
    restarts = [call for call in _calls(sshd, "systemctl") if "restart" in call]
    assert len(restarts) == 1
    ups = [call for call in sshd.calls() if "up" in call and call[0] in ("docker", "docker-compose")]
    assert len(ups) == 1
    assert len(bot.memory_records()) == 6


def test_policy_refusal_opens_no_connection(bot: BotEnv, sshd: SshdHandle) -> None:
    remote_setup(bot, sshd)
    ticket = bot.ticket("refused", _spec("systemd_remote", {"unit": "sshd.service", "operation": "restart"}))
    unknown_host = bot.ticket("unknown", _spec("systemd_remote", {"unit": "nginx.service", "operation": "status"}, host="db9"))
    before = sshd.connection_count()

    bot.run()

    assert sshd.connection_count() == before
    assert bot.status(ticket) == 4
    refusal = bot.sim.followups(ticket)[-1]["content"]
    assert "sshd.service" in refusal
    assert "actions.systemd_remote.allowed_units" in refusal
    assert "not in the inventory" in bot.sim.followups(unknown_host)[-1]["content"]
    assert sshd.calls() == []


def test_one_connection_for_ten_tickets(bot: BotEnv, sshd: SshdHandle) -> None:
    remote_setup(bot, sshd)
    for number in range(10):
        bot.ticket(f"t{number}", _spec("systemd_remote", {"unit": "nginx.service", "operation": "is-active"}))
    before = sshd.accepted_count()

    summary = bot.run()

    assert summary.count("solved") == 10
    assert sshd.accepted_count() - before == 1
    assert not [thread for thread in threading.enumerate() if "paramiko" in repr(thread).lower()]


def test_sudo_refusal_is_config_problem(bot: BotEnv, sshd: SshdHandle) -> None:
    remote_setup(bot, sshd, sudo=True)
    sshd.set_scenario("sudo-mode", "password")
    ticket = bot.ticket("sudo", _spec("systemd_remote", {"unit": "nginx.service", "operation": "status"}))

    summary = bot.run()

    assert summary.exit_code == ExitCode.TICKET_ERROR
    assert "setup_problems=1" in summary.line()
    assert bot.status(ticket) == 4
    text = bot.sim.followups(ticket)[-1]["content"]
    assert "needs a password" in text
    assert "NOPASSWD" in text
    assert "is down" not in text


def test_unknown_host_key_blocks_ticket(bot: BotEnv, sshd: SshdHandle) -> None:
    remote_setup(bot, sshd)
    empty = sshd.write_known_hosts("", "known_hosts.empty")
    bot.overrides["hosts"] = {"svc-auto": sshd.host_entry(known_hosts=str(empty))}
    ticket = bot.ticket("hostkey", _spec("systemd_remote", {"unit": "nginx.service", "operation": "status"}))
    other = bot.ticket("http", _spec("http_check", {"url": f"{bot.sim.url}/health"}, host=None))

    summary = bot.run()

    assert bot.status(ticket) == 4
    assert "SHA256:" in bot.sim.followups(ticket)[-1]["content"]
    assert empty.read_text() == ""
    assert bot.status(other) == 5
    assert summary.exit_code == ExitCode.TICKET_ERROR
    assert [item.ticket_id for item in summary.outcomes if item.setup_problem] == [ticket]
    assert _calls(sshd, "systemctl") == []


def test_doctor_all_ok(bot: BotEnv, sshd: SshdHandle) -> None:
    remote_setup(bot, sshd, sudo=True)
    config = bot.write_config()

    result = bot.cli("doctor", "--config", str(config))

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines
    assert all(line.startswith("ok") for line in lines), result.stdout
    assert any("host svc-auto sudo" in line for line in lines)
    assert any("GLPI category" in line for line in lines)


def test_doctor_wrong_host_key(bot: BotEnv, sshd: SshdHandle) -> None:
    remote_setup(bot, sshd)
    from tests.sshd import hosts_line, write_private_key

    stranger = write_private_key(sshd.test_dir / "stranger_key")
    wrong = sshd.write_known_hosts(hosts_line(f"[127.0.0.1]:{sshd.port}", stranger), "known_hosts.wrong")
    bot.overrides["hosts"] = {"svc-auto": sshd.host_entry(known_hosts=str(wrong))}

    result = bot.cli("doctor", "--config", str(bot.write_config()))

    assert result.returncode == 1
    problems = [line for line in result.stdout.splitlines() if line.startswith("PROBLEM")]
    assert len(problems) == 1
    assert "host svc-auto host key" in problems[0]


def test_doctor_missing_secret(bot: BotEnv) -> None:
    env = bot.env()
    del env["GLPIBOT_GLPI_CLIENT_SECRET"]
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "glpibot", "doctor", "--config", str(bot.write_config())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    problems = [line for line in result.stdout.splitlines() if line.startswith("PROBLEM")]
    assert any("GLPIBOT_GLPI_CLIENT_SECRET" in line for line in problems)


def test_doctor_unreachable_glpi(bot: BotEnv) -> None:
    config = bot.write_config()
    bot.sim.stop()

    result = bot.cli("doctor", "--config", str(config), "--json")

    assert result.returncode == 1
    checks = json.loads(result.stdout)
    failed = [check for check in checks if not check["ok"]]
    assert [check["check"] for check in failed] == ["GLPI login"]


def test_doctor_unwritable_artifacts(bot: BotEnv) -> None:
    blocker = bot.root / "a-file"
    blocker.write_text("not a folder")
    bot.overrides["artifacts"] = {"dir": str(blocker / "docs")}

    result = bot.cli("doctor", "--config", str(bot.write_config()))

    assert result.returncode == 1
    problems = [line for line in result.stdout.splitlines() if line.startswith("PROBLEM")]
    assert len(problems) == 1
    assert "artifact directory" in problems[0]


def test_doctor_git_for_new_artifact_dir(bot: BotEnv) -> None:
    import subprocess

    repo = bot.root / "docs-repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    bot.overrides["artifacts"] = {"dir": str(repo / "generated" / "glpi-bot"), "git_commit": True}

    result = bot.cli("doctor", "--config", str(bot.write_config()))

    assert result.returncode == 0, result.stdout
    assert any(line.startswith("ok") and "artifact git" in line for line in result.stdout.splitlines())


def test_missing_sudo_named(bot: BotEnv, sshd: SshdHandle) -> None:
    remote_setup(bot, sshd, sudo=True)
    (sshd.standins_dir / "sudo").unlink()
    ticket = bot.ticket("nosudo", _spec("systemd_remote", {"unit": "nginx.service", "operation": "status"}))

    bot.run()

    text = bot.sim.followups(ticket)[-1]["content"]
    assert "sudo is not installed on svc-auto" in text
    assert "sudo: false" in text
