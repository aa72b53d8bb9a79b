"""Measure poll passes against the bundled GLPI simulator: time, GLPI requests and peak memory.

Run with `make benchmark` (or `python benchmarks/poll_pass.py`). It starts the
simulator on 127.0.0.1, runs a pass over N http_check tickets in this
process, then an idle pass, and prints one Markdown table row per scenario.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from glpibot.config import config_from_dict  # noqa: E402
from glpibot.testing.simulator import GlpiSimulator  # noqa: E402
from glpibot.workflow.pass_runner import run_pass  # noqa: E402

SPEC = "<p>glpibot: 1<br>action: http_check<br>params:<br>&nbsp; url: \"{url}/health\"<br>&nbsp; expect_status: 200</p>"


def _config(sim: GlpiSimulator, root: Path):
    return config_from_dict(
        {
            "glpi": {"url": sim.url, "client_id": sim.client_id, "username": "homelab-bot", "category": 2},
            "state_dir": str(root / "state"),
            "actions": {"http_check": {"allowed_urls": ["http://127.0.0.1:*/*"]}},
            "artifacts": {"dir": str(root / "docs")},
            "memory": {"sink": "jsonl"},
        }
    )


def measure(tickets: int, idle_repeats: int) -> list[str]:
    rows = []
    with GlpiSimulator() as sim, tempfile.TemporaryDirectory() as folder:
        os.environ["GLPIBOT_GLPI_CLIENT_SECRET"] = sim.client_secret
        os.environ["GLPIBOT_GLPI_PASSWORD"] = sim.users["homelab-bot"][1]
        for number in range(tickets):
            sim.add_ticket(name=f"bench {number}", content=SPEC.format(url=sim.url), assigned_user_ids=[7])
        config = _config(sim, Path(folder))

        tracemalloc.start()
        started = time.perf_counter()
        summary = run_pass(config)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rows.append(
            f"| pass over {tickets} http_check tickets | {elapsed:.2f} s ({elapsed / max(tickets, 1) * 1000:.0f} ms per ticket) "
            f"| {summary.glpi_requests} | {peak / 1024 / 1024:.1f} MiB |"
        )

        durations = []
        requests = []
        for _ in range(idle_repeats):
            sim.reset_requests()
            started = time.perf_counter()
            summary = run_pass(config)
            durations.append(time.perf_counter() - started)
            requests.append(sim.request_count)
        rows.append(
            f"| idle pass (median of {idle_repeats}) | {statistics.median(durations) * 1000:.0f} ms "
            f"| {max(requests)} | - |"
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=50, help="tickets in the busy pass (default 50)")
    parser.add_argument("--idle-repeats", type=int, default=20, help="idle passes to take the median of (default 20)")
    args = parser.parse_args()
    print("| scenario | wall time | GLPI requests | peak Python memory |")
    print("| --- | --- | --- | --- |")
    for row in measure(args.tickets, args.idle_repeats):
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
