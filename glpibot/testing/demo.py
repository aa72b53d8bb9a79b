"""The demo behind `make demo`: a real `glpibot poll` against the bundled GLPI simulator.

It starts the simulator on 127.0.0.1 with sample tickets, writes a minimal
config in a work folder, runs the real `glpibot poll` command twice, and
prints what happened to each ticket.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from glpibot.testing.seed import seed_demo
from glpibot.testing.simulator import GlpiSimulator

STATUS_NAMES = {1: "New", 2: "Processing (assigned)", 3: "Processing (planned)", 4: "Pending", 5: "Solved", 6: "Closed"}

CONFIG_TEMPLATE = """\
glpi:
  url: {url}
  client_id: {client_id}
  username: homelab-bot
  category: "Automation > Homelab Bot"
state_dir: {work}/state
actions:
  http_check:
    allowed_urls: ["http://127.0.0.1:*/*"]
artifacts:
  dir: {work}/docs/generated/glpi-bot
memory:
  sink: jsonl
"""


def _text(content: str) -> str:
    """Return the readable text of a posted HTML message, one line per paragraph."""
    content = re.sub(r"(?i)<br\s*/?>|</p>|</li>|</pre>", "\n", content)
    content = html.unescape(re.sub(r"<[^>]+>", "", content))
    return "\n".join("      " + line for line in content.splitlines() if line.strip())


def _poll(config_path: Path, env: dict[str, str]) -> int:
    command = [sys.executable, "-m", "glpibot", "poll", "--config", str(config_path)]
    print(f"$ glpibot poll --config {config_path}", flush=True)
    return subprocess.run(command, env=env, check=False).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, help="folder for the config, state and artifacts (default: a new temporary folder)")
    args = parser.parse_args()
    work = (args.work_dir or Path(tempfile.mkdtemp(prefix="glpibot-demo-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)

    with GlpiSimulator() as sim:
        tickets = seed_demo(sim, f"{sim.url}/health")
        config_path = work / "config.yaml"
        config_path.write_text(CONFIG_TEMPLATE.format(url=sim.url, client_id=sim.client_id, work=work))
        env = dict(os.environ)
        env["GLPIBOT_GLPI_CLIENT_SECRET"] = sim.client_secret
        env["GLPIBOT_GLPI_PASSWORD"] = sim.users["homelab-bot"][1]
        print(f"GLPI simulator at {sim.url}; work folder {work}\n", flush=True)

        sim.reset_requests()
        first_code = _poll(config_path, env)
        print(f"first pass: exit status {first_code}, {sim.request_count} HTTP request(s) to GLPI\n")
        for label, ticket_id in tickets.items():
            ticket = sim.ticket(ticket_id)
            status = ticket["status"]["id"]
            print(f"ticket {ticket_id} ({label}): {STATUS_NAMES.get(status, status)}")
            for item in sim.followups(ticket_id):
                print(f"  follow-up {item['id']}:\n{_text(item['content'])}")
            for item in sim.solutions(ticket_id):
                print(f"  solution {item['id']}:\n{_text(item['content'])}")
            artifact = work / "docs/generated/glpi-bot" / f"ticket-{ticket_id}.md"
            print(f"  artifact: {artifact if artifact.exists() else '(none)'}\n")

        memory_path = work / "state" / "memory.jsonl"
        records = memory_path.read_text().splitlines() if memory_path.exists() else []
        print(f"memory records in {memory_path}: {len(records)}")

        sim.reset_requests()
        second_code = _poll(config_path, env)
        print(f"second pass: exit status {second_code}, {sim.request_count} HTTP request(s) to GLPI")
    return first_code or second_code


if __name__ == "__main__":
    sys.exit(main())
