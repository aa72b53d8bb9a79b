"""A ready bot setup for end-to-end tests: simulator, config, secrets and helpers to run passes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from glpibot.config import Config, config_from_dict
from glpibot.redact import forget_secrets
from glpibot.testing import canaries
from glpibot.testing.simulator import GlpiSimulator
from glpibot.workflow.pass_runner import PassSummary, run_pass

BOT_ID = 7
CATEGORY_ID = 2


def spec_body(spec_yaml: str) -> str:
    """Return a ticket body as GLPI's editor stores it: one paragraph per line, NBSP indentation."""
    lines = []
    for line in spec_yaml.strip("\n").splitlines():
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        lines.append("&nbsp;" * indent + stripped.replace("&", "&amp;").replace("<", "&lt;"))
    return "<p>Hello bot,</p><p>" + "<br>".join(lines) + "</p><p>Thanks</p>"


@dataclass
class BotEnv:
    sim: GlpiSimulator
    root: Path
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def artifact_dir(self) -> Path:
        return self.root / "docs"

    def config_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "glpi": {
                "url": self.sim.url,
                "client_id": self.sim.client_id,
                "username": "homelab-bot",
                "category": "Automation > Homelab Bot",
                "timeout_s": 5,
            },
            "state_dir": str(self.state_dir),
            "actions": {"http_check": {"allowed_urls": ["http://127.0.0.1:*/*"]}},
            "artifacts": {"dir": str(self.artifact_dir)},
            "memory": {"sink": "jsonl"},
        }
        for key, value in self.overrides.items():
            data[key] = value
        return data

    def config(self) -> Config:
        return config_from_dict(self.config_data())

    def write_config(self) -> Path:
        path = self.root / "config.yaml"
        path.write_text(yaml.safe_dump(self.config_data()))
        return path

    def env(self) -> dict[str, str]:
        """Return the environment of a CLI run: every secret set, the memory token and key passphrase as canaries."""
        env = dict(os.environ)
        env["GLPIBOT_GLPI_CLIENT_SECRET"] = self.sim.client_secret
        env["GLPIBOT_GLPI_PASSWORD"] = self.sim.users["homelab-bot"][1]
        env["GLPIBOT_MEMORY_TOKEN"] = canaries.MEMORY_TOKEN
        env["GLPIBOT_SSH_KEY_PASSPHRASE"] = canaries.SSH_KEY_PASSPHRASE
        return env

    def run(self, **options: Any) -> PassSummary:
        """Run one pass in this process."""
        return run_pass(self.config(), **options)

    def cli(
        self, *args: str, stdin: str | None = None, env: dict[str, str | None] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the real `glpibot` command line in a child process.

        `env` changes the environment of env(); a None value removes the
        variable. Both output streams go to the secret scanner's session file.
        """
        environment = self.env()
        for name, value in (env or {}).items():
            if value is None:
                environment.pop(name, None)
            else:
                environment[name] = value
        from tests.canary_scan import record_cli_output  # imported late: conftest registers it as a plugin

        command = [sys.executable, "-m", "glpibot", *args]
        result = subprocess.run(command, env=environment, input=stdin, capture_output=True, text=True, timeout=120)
        record_cli_output(["glpibot", *args], result.returncode, result.stdout, result.stderr)
        return result

    def ticket(self, name: str, spec_yaml: str | None = None, *, content: str | None = None, **kwargs: Any) -> int:
        kwargs.setdefault("assigned_user_ids", [BOT_ID])
        body = content if content is not None else spec_body(spec_yaml or "")
        return self.sim.add_ticket(name=name, content=body, **kwargs)

    def status(self, ticket_id: int) -> int:
        return int(self.sim.ticket(ticket_id)["status"]["id"])

    def memory_records(self) -> list[dict[str, Any]]:
        path = self.state_dir / "memory.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def make_bot_env(tmp_path: Path, monkeypatch: Any) -> BotEnv:
    sim = GlpiSimulator().start()
    env = BotEnv(sim=sim, root=tmp_path)
    monkeypatch.setenv("GLPIBOT_GLPI_CLIENT_SECRET", sim.client_secret)
    monkeypatch.setenv("GLPIBOT_GLPI_PASSWORD", sim.users["homelab-bot"][1])
    monkeypatch.setenv("GLPIBOT_MEMORY_TOKEN", canaries.MEMORY_TOKEN)
    monkeypatch.setenv("GLPIBOT_SSH_KEY_PASSPHRASE", canaries.SSH_KEY_PASSPHRASE)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    forget_secrets()
    return env
