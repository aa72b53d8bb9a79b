"""Crash-safety harness: SIGKILL a real `glpibot poll` at one step of a pass, then check what later passes leave.

A kill point is one moment of the pass where the harness stops it: a GLPI
request held before or after the simulator applies it, a step's action held
while it runs, an artifact's temporary file held before its rename, the
artifact's git commit held in a pre-commit hook, or the memory record's POST
held by the memory service. For each kill point, `run_kill_point` builds a
fresh world (simulator, four tickets, servers, git repository, sshd
stand-ins) and starts `python -m glpibot poll`. Once the pass reaches the
point, it kills the pass with SIGKILL and releases the hold. It then deletes
the whole state directory when asked, runs two normal passes and lists every
broken promise.

Run the whole matrix as a script; it prints the figures as JSON:
    python -m tests.crashkit [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from glpibot.testing import canaries
from glpibot.testing.faults import Fault
from glpibot.testing.simulator import GlpiSimulator
from glpibot.workflow.lock import PassLock
from glpibot.workflow.pass_runner import PassSummary, run_pass
from tests.botenv import BOT_ID, BotEnv
from tests.httpservers import LocalHttpServer, RecordedRequest, Reply
from tests.sshd import SshdHandle, SshServer

REPO_ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 30.0  # maximum wait for a pass to reach its kill point, or for a released process to end
MEMORY_TOKEN = canaries.MEMORY_TOKEN  # the suite's secret scanner fails the run if it leaks anywhere
PROJECT_DIR = "/srv/compose/web"
TICKETS = ("http", "invalid", "systemd", "compose")  # created in this order, so ids ascend
TICKET_OPERATIONS = {"systemd": "systemctl restart", "compose": "compose up"}  # the state change each ticket asks for
ACTION_HOLDS = {"systemd": ("systemctl-hold", "restart", "systemctl"), "compose": ("compose-hold", "up", "compose")}
STATE_CHANGING = {"systemctl": {"start", "stop", "restart", "reload"}, "compose": {"up", "restart", "stop", "down"}}
ENDINGS = ("blocked", "interrupted")  # marker kinds of the follow-up that puts a ticket in Pending
MARKER_RE = re.compile(r"glpibot-run (\d+)-(\d+)-([0-9a-f]{6}) (claimed|solved|blocked|interrupted)")
SPECS = {
    "http": 'glpibot: 1\nreason: is the wiki up\naction: http_check\nparams:\n  url: "{url}"\n  expect_status: 200\n',
    "invalid": 'glpibot: 1\naction: http_check\nparams:\n  url: "wiki.example.test/"\n  expect_staus: 200\n',
    "systemd": "glpibot: 1\nreason: reload nginx\naction: systemd_remote\nhost: svc-auto\n"
    "params:\n  unit: nginx.service\n  operation: restart\n",
    "compose": "glpibot: 1\nreason: start the web stack\naction: docker_compose_remote\nhost: svc-auto\n"
    "params:\n  project: web\n  operation: up\n",
}
# Runs `python -m glpibot` with os.replace wrapped: renaming a temporary artifact file onto $CRASH_ARTIFACT
# first creates $CRASH_CONTROL/rename-held, then waits for $CRASH_CONTROL/rename-release (at most 60 s).
RENAME_BREAKPOINT = """
import os, runpy, time
from pathlib import Path
control, wanted, real_replace = Path(os.environ["CRASH_CONTROL"]), os.environ["CRASH_ARTIFACT"], os.replace
def replace(src, dst, *args, **kwargs):
    if os.path.basename(src).startswith(".ticket-") and os.path.basename(dst) == wanted:
        (control / "rename-held").write_text(str(os.getpid()))
        deadline = time.monotonic() + 60
        while not (control / "rename-release").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return real_replace(src, dst, *args, **kwargs)
os.replace = replace
runpy.run_module("glpibot", run_name="__main__", alter_sys=True)
"""
HOOK = """#!/bin/sh
# Holds the commit whose number is in $CONTROL/hold until $CONTROL/release exists.
CONTROL='{control}'
n=$(( $(cat "$CONTROL/count" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$CONTROL/count"
if [ "$n" = "$(cat "$CONTROL/hold" 2>/dev/null)" ]; then
    echo $$ > "$CONTROL/held"
    i=0
    while [ ! -e "$CONTROL/release" ] && [ "$i" -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
    touch "$CONTROL/done"
fi
exit 0
"""


@dataclass(frozen=True)
class KillPoint:
    """Where to kill: kind is glpi-before, glpi-after, action, artifact-file, artifact or memory.

    For GLPI kinds `target` is "METHOD path" and `nth` its occurrence in the
    pass; for the others `target` is a ticket key from TICKETS.
    """

    kind: str
    target: str
    nth: int = 1

    @property
    def label(self) -> str:
        return f"{self.kind} {self.target}" + (f" #{self.nth}" if self.kind.startswith("glpi") else "")


@dataclass
class KillResult:
    label: str
    kind: str
    lose_state: bool
    reached: bool
    outcomes: dict[str, str] = field(default_factory=dict)  # ticket key -> solved | blocked | interrupted | ...
    state_changes: dict[str, int] = field(default_factory=dict)  # "systemctl restart" -> calls logged
    http_checks: int = 0  # requests the read-only step sent, all passes together
    memory_reposts: int = 0  # records POSTed again with the same Idempotency-Key (the service drops the repeat)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (category, message)
    seconds: float = 0.0


class MemorySink:
    """A memory service on 127.0.0.1 that stores POSTed records. It can be down (503) or hold one ticket's POST."""

    def __init__(self) -> None:
        self.accepted: list[dict[str, Any]] = []  # {"key", "ticket_id", "token_ok"} per stored POST
        self.rejected = 0  # POSTs rejected with status 503 while down
        self.down = False
        self.hold_ticket: int | None = None
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                record = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                with sink.lock:
                    hold = sink.hold_ticket is not None and record.get("ticket_id") == sink.hold_ticket
                    if hold:
                        sink.hold_ticket = None
                if hold:
                    sink.arrived.set()
                    sink.release.wait(WAIT_S)
                with sink.lock:
                    if sink.down:
                        sink.rejected += 1
                        status = 503
                    else:
                        token_ok = self.headers.get("Authorization") == f"Bearer {MEMORY_TOKEN}"
                        key = self.headers.get("Idempotency-Key")
                        sink.accepted.append({"key": key, "ticket_id": record.get("ticket_id"), "token_ok": token_ok})
                        status = 201
                body = b'{"ok": true}' if status == 201 else b"unavailable"
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the pass was killed while its POST was held

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/records"

    def keys(self, ticket_id: int) -> list[str]:
        with self.lock:
            return [entry["key"] for entry in self.accepted if entry["ticket_id"] == ticket_id]

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


class HeldRoute:
    """The http_check target: returns 200 "ok", once after holding the request until released when armed."""

    def __init__(self) -> None:
        self.armed = False
        self.arrived = threading.Event()
        self.release = threading.Event()

    def __call__(self, request: RecordedRequest) -> Reply:
        if self.armed:
            self.armed = False
            self.arrived.set()
            self.release.wait(WAIT_S)
        return Reply(200, b"ok\n", {"Content-Type": "text/plain"})


class CrashWorld:
    """A fresh setup for one kill point: simulator, four tickets, web target, memory sink, git repo, stand-ins."""

    def __init__(self, root: Path, ssh_server: SshServer) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        ssh_server.reset()
        self.sshd = SshdHandle(ssh_server, root / "ssh")
        self.sim = GlpiSimulator().start()
        self.health = HeldRoute()
        self.web = LocalHttpServer().start()
        self.web.route("/health", self.health)
        self.sink = MemorySink()
        self.hook_dir = root / "hook"
        self.hook_dir.mkdir()
        self.bot = BotEnv(sim=self.sim, root=root, overrides=self._overrides())
        self._init_git()
        nginx = {"LoadState": "loaded", "ActiveState": "active", "SubState": "running"}
        self.sshd.set_scenario("systemctl-units.json", json.dumps({"nginx.service": nginx}))
        services = {"app": {"State": "running", "Health": "", "ExitCode": 0}}
        projects = {PROJECT_DIR: {"name": "web", "services": services}}
        self.sshd.set_scenario("compose-projects.json", json.dumps(projects))
        self.tickets: dict[str, int] = {}
        for key in TICKETS:
            self.tickets[key] = self.bot.ticket(key, SPECS[key].format(url=self.web.url("/health")))
        for key in ("systemd", "compose"):  # set back to New, so the pass also sends the Processing status change
            self.sim.set_status(self.tickets[key], 1)
        self.config_path = self.bot.write_config()

    def _overrides(self) -> dict[str, Any]:
        project = {"host": "svc-auto", "path": PROJECT_DIR, "operations": ["ps", "up"]}
        units = {"allowed_units": {"svc-auto": ["nginx.service"]}, "operations": ["status", "restart"]}
        return {
            "hosts": {"svc-auto": self.sshd.host_entry(command_timeout_s=30)},
            "pass_timeout_s": 120,
            "artifacts": {"dir": str(self.root / "docs"), "git_commit": True},
            "memory": {"sink": "http", "url": self.sink.url, "timeout_s": 5},
            "actions": {
                "http_check": {"allowed_urls": ["http://127.0.0.1:*/*"]},
                "systemd_remote": units,
                "docker_compose_remote": {"projects": {"web": project}},
            },
        }

    def _init_git(self) -> None:
        docs = self.root / "docs"
        subprocess.run(["git", "init", "-q", str(docs)], check=True, timeout=30)
        for key, value in (("user.name", "crash harness"), ("user.email", "crash@localhost")):
            subprocess.run(["git", "-C", str(docs), "config", key, value], check=True, timeout=30)
        hook = docs / ".git" / "hooks" / "pre-commit"
        hook.write_text(HOOK.format(control=self.hook_dir), encoding="utf-8")
        hook.chmod(0o755)

    def env(self) -> dict[str, str]:
        env = self.bot.env()
        env["GLPIBOT_MEMORY_TOKEN"] = MEMORY_TOKEN
        env.pop("CREDENTIALS_DIRECTORY", None)
        return env

    def start_poll(self, name: str, *, hold_rename_of: str | None = None) -> subprocess.Popen[bytes]:
        """Start `python -m glpibot poll` in a child process; its output goes to `<root>/<name>.log`.

        With `hold_rename_of` (an artifact file name) the child runs the same
        module through RENAME_BREAKPOINT, which stops the pass after that
        artifact's temporary file is written and before it is renamed.
        """
        env = self.env()
        command = [sys.executable, "-m", "glpibot", "poll", "--config", str(self.config_path)]
        if hold_rename_of:
            env.update(CRASH_CONTROL=str(self.hook_dir), CRASH_ARTIFACT=hold_rename_of)
            command[1:3] = ["-c", RENAME_BREAKPOINT]
        with (self.root / f"{name}.log").open("wb") as log:
            return subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=REPO_ROOT)

    def run_pass(self, minutes_later: int) -> PassSummary:
        """Run one normal pass in this process, its clock `minutes_later` minutes ahead as with the minute timer.

        The secrets are in the environment only while the pass runs.
        """
        with _environment(self.env()):
            return run_pass(self.bot.config(), clock=lambda: time.time() + 60.0 * minutes_later)

    def close(self) -> None:
        self.health.release.set()
        self.web.stop()
        self.sink.stop()
        self.sim.stop()


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    keys = ("GLPIBOT_GLPI_CLIENT_SECRET", "GLPIBOT_GLPI_PASSWORD", "GLPIBOT_MEMORY_TOKEN", "CREDENTIALS_DIRECTORY")
    saved = {key: os.environ.get(key) for key in keys}
    try:
        for key in keys:
            if key in values:
                os.environ[key] = values[key]
            else:
                os.environ.pop(key, None)
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _wait_until(condition: Any, timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def arm(world: CrashWorld, point: KillPoint) -> tuple[Any, Any]:
    """Prepare the hold for a kill point; return (reached() -> bool, release())."""
    if point.kind.startswith("glpi"):
        method, path = point.target.split(" ", 1)
        hold, reached = threading.Event(), threading.Event()
        after = point.kind == "glpi-after"
        # A request held before it is applied is dropped afterwards, so that write never happens.
        fault = Fault(
            method=method,
            path=f"^{re.escape(path)}$",
            nth=point.nth,
            hold=hold,
            reached=reached,
            hold_after_apply=after,
            drop=not after,
        )
        world.sim.add_fault(fault)
        return reached.is_set, hold.set
    if point.kind == "action" and point.target == "http":
        world.health.armed = True
        return world.health.arrived.is_set, world.health.release.set
    if point.kind == "action":
        scenario, word, prefix = ACTION_HOLDS[point.target]
        world.sshd.set_scenario(scenario, word)
        state = world.sshd.state_dir
        return (state / f"{prefix}-held").exists, (state / f"{prefix}-release").touch
    if point.kind == "artifact":
        (world.hook_dir / "hold").write_text(f"{TICKETS.index(point.target) + 1}\n")
        return (world.hook_dir / "held").exists, (world.hook_dir / "release").touch
    if point.kind == "artifact-file":
        return (world.hook_dir / "rename-held").exists, (world.hook_dir / "rename-release").touch
    if point.kind == "memory":
        world.sink.hold_ticket = world.tickets[point.target]
        return world.sink.arrived.is_set, world.sink.release.set
    raise ValueError(f"unknown kill point kind {point.kind!r}")


def _settle(world: CrashWorld) -> None:
    """Wait for what the killed pass left running once released: a stand-in, or git and its hook."""
    for prefix in ("systemctl", "compose"):
        held = world.sshd.state_dir / f"{prefix}-held"
        if held.exists():
            pid = int(held.read_text().strip() or 0)
            _wait_until(lambda: not _alive(pid))
    if (world.hook_dir / "held").exists():
        _wait_until((world.hook_dir / "done").exists)
    _wait_until(lambda: not (world.root / "docs" / ".git" / "index.lock").exists())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0 only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_kill_point(ssh_server: SshServer, root: Path, point: KillPoint, *, lose_state: bool) -> KillResult:
    """Kill a pass at `point`, run two normal passes, and return the result with every problem found."""
    started = time.monotonic()
    result = KillResult(point.label, point.kind, lose_state, reached=False)
    world = CrashWorld(root, ssh_server)
    try:
        reached, release = arm(world, point)
        rename_of = f"ticket-{world.tickets[point.target]}.md" if point.kind == "artifact-file" else None
        child = world.start_poll("killed-pass", hold_rename_of=rename_of)
        _wait_until(lambda: reached() or child.poll() is not None)
        result.reached = bool(reached())
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait(WAIT_S)
        release()
        _settle(world)
        if not result.reached:
            result.problems.append(("not_reached", f"the pass ended (exit {child.returncode}) before the kill point"))
        result.problems += _lock_problems(world.bot.state_dir, "right after the kill")
        if lose_state:
            shutil.rmtree(world.bot.state_dir, ignore_errors=True)
        for number in (1, 2):
            try:
                summary = world.run_pass(minutes_later=number)
            except Exception as exc:  # LockHeldError, or a bug the summary does not catch
                result.problems.append(("pass_error", f"pass {number} after the kill raised {exc!r}"))
                continue
            if summary.exit_code != 0:
                result.problems.append(("pass_error", f"pass {number} after the kill exited {summary.exit_code}"))
        inspect(world, point, result)
    finally:
        world.close()
    result.seconds = round(time.monotonic() - started, 2)
    return result


def count_state_changes(calls: list[list[str]]) -> Counter[str]:
    """Count the state-changing systemctl and compose operations in the stand-ins' call log."""
    counts: Counter[str] = Counter()
    for argv in calls:
        if argv[:1] == ["systemctl"]:
            words = [arg for arg in argv[1:] if not arg.startswith("-")]
            if words and words[0] in STATE_CHANGING["systemctl"]:
                counts[f"systemctl {words[0]}"] += 1
        elif argv[:2] == ["docker", "compose"] or argv[:1] == ["docker-compose"]:
            args = argv[2:] if argv[0] == "docker" else argv[1:]
            while args and args[0].startswith("-"):
                args = args[1:] if "=" in args[0] else args[2:]  # global flags such as --project-directory DIR
            if args and args[0] in STATE_CHANGING["compose"]:
                counts[f"compose {args[0]}"] += 1
    return counts


def bot_messages(sim: GlpiSimulator, ticket_id: int) -> list[tuple[str, str, str, str]]:
    """Return (item type, run marker, message kind, text) for each marker in the bot's own follow-ups and solutions."""
    found = []
    for item_type, items in (("Followup", sim.followups(ticket_id)), ("Solution", sim.solutions(ticket_id))):
        for item in items:
            if (item.get("user") or {}).get("id") != BOT_ID:
                continue
            text = html.unescape(html.unescape(str(item.get("content") or "")))
            for match in MARKER_RE.finditer(text):
                if int(match.group(1)) == ticket_id:
                    marker = "-".join(match.group(1, 2, 3))
                    found.append((item_type, marker, match.group(4), text))
    return found


def ticket_outcome(sim: GlpiSimulator, ticket_id: int) -> tuple[str, list[str]]:
    """Return the ticket's outcome (solved, blocked, interrupted or unanswered ...) and its duplicate messages."""
    messages = bot_messages(sim, ticket_id)
    duplicates = []
    # Per run (attempt): one claim, one ending (blocked or interrupted), one solution.
    per_run = Counter((marker, "ending" if kind in ENDINGS else kind) for _, marker, kind, _ in messages)
    for (marker, kind), count in sorted(per_run.items()):
        if count > 1:
            duplicates.append(f"{count} {kind} messages for run {marker}")
    solutions = [message for message in messages if message[0] == "Solution"]
    if len(solutions) > 1:
        duplicates.append(f"{len(solutions)} solutions")
    status = int(sim.ticket(ticket_id)["status"]["id"])
    endings = [kind for item_type, _, kind, _ in messages if item_type == "Followup" and kind in ENDINGS]
    if status == 5 and len(solutions) == 1:
        return "solved", duplicates
    if status == 4 and endings and not solutions:
        return endings[-1], duplicates
    return f"unanswered (status {status}, {len(solutions)} solution(s), endings {endings})", duplicates


def artifact_problem(text: str, ticket_id: int, steps: int) -> str | None:
    """Return why an artifact is not a whole rendering of the template, or None when it is complete."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith(f"# Ticket {ticket_id}: "):
        return "its first line is not the ticket heading"
    if not text.endswith("\n") or "## Steps" not in lines:
        return "it stops before the end of the template"
    fence = ""
    for line in lines:
        stripped = line.strip()
        if not fence and re.fullmatch(r"(`{3,}|~{3,})\w*", stripped):
            fence = re.match(r"`+|~+", stripped).group(0)  # type: ignore[union-attr]
        elif fence and stripped == fence:
            fence = ""
    if fence:
        return "a code block is not closed"
    if sum(1 for line in lines if line.startswith("### Step ")) != steps:
        return f"it does not hold {steps} step section(s)"
    last = [line for line in lines if line.strip()][-1].strip()
    if last not in ("No steps.", "No output.") and not re.fullmatch(r"`{3,}|~{3,}", last):
        return f"its last line {last!r} is not one the template ends with"
    return None


# The outcomes each scenario ticket may end with; a state-changing step may be reported interrupted.
EXPECTED = {
    "http": ("solved",),
    "invalid": ("blocked",),
    "systemd": ("solved", "interrupted"),
    "compose": ("solved", "interrupted"),
}


def inspect(world: CrashWorld, point: KillPoint, result: KillResult) -> None:
    """Check every promise after the passes; add a (category, message) to result.problems for each broken one."""
    changes = count_state_changes(world.sshd.calls())
    result.state_changes = dict(changes)
    result.http_checks = sum(1 for request in world.web.requests if request.path == "/health")
    with world.sink.lock:
        posted = Counter(entry["key"] for entry in world.sink.accepted)
    result.memory_reposts = sum(count - 1 for count in posted.values())
    for name, count in sorted(changes.items()):
        if count > 1:
            result.problems.append(("double_execution", f"{name} ran {count} times"))
    for key in world.tickets:
        _check_ticket(world, point, key, result)
    docs = world.root / "docs"
    result.problems += [("half_written", f"temporary file {path.name} left") for path in docs.glob(".ticket-*.tmp")]
    result.problems += _state_dir_problems(world.bot.state_dir)


def _check_ticket(world: CrashWorld, point: KillPoint, key: str, result: KillResult) -> None:
    """Check one ticket's status and messages, its artifact and its memory record."""
    problems = result.problems
    ticket_id = world.tickets[key]
    outcome, duplicates = ticket_outcome(world.sim, ticket_id)
    result.outcomes[key] = outcome
    problems += [("duplicate_message", f"ticket {key}: {text}") for text in duplicates]
    killed_in_its_action = point.kind == "action" and point.target == key and key in ACTION_HOLDS
    if outcome.startswith("unanswered"):
        problems.append(("unanswered", f"ticket {key}: {outcome}"))
    elif outcome not in EXPECTED[key]:
        problems.append(("wrong_outcome", f"ticket {key}: {outcome}"))
    elif killed_in_its_action and outcome != "interrupted":
        problems.append(("wrong_outcome", f"ticket {key}: {outcome}, though the pass died while its action ran"))
    if outcome == "interrupted":
        problems += _interrupted_wording(world.sim, ticket_id, key)

    artifact = world.root / "docs" / f"ticket-{ticket_id}.md"
    if not artifact.is_file():
        problems.append(("missing_artifact", f"ticket {key}: no {artifact.name}"))
    else:
        steps = 0 if key == "invalid" else 1
        reason = artifact_problem(artifact.read_text(encoding="utf-8"), ticket_id, steps)
        if reason:
            problems.append(("half_written", f"{artifact.name}: {reason}"))
    if not world.sink.keys(ticket_id):
        problems.append(("missing_memory", f"ticket {key}: no memory record stored"))


def _interrupted_wording(sim: GlpiSimulator, ticket_id: int, key: str) -> list[tuple[str, str]]:
    texts = [text.lower() for _, _, kind, text in bot_messages(sim, ticket_id) if kind == "interrupted"]
    wanted = ("the run was interrupted", "may or may not have taken effect", "back to new")
    missing = [phrase for phrase in wanted if not any(phrase in text for text in texts)]
    return [("interrupted_wording", f"ticket {key}: the follow-up lacks {phrase!r}") for phrase in missing]


def _state_dir_problems(state_dir: Path) -> list[tuple[str, str]]:
    problems = []
    ledger = state_dir / "ledger.sqlite3"
    if ledger.exists():
        connection = sqlite3.connect(str(ledger), timeout=5)
        try:
            verdict = connection.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            connection.close()
        if verdict != "ok":
            problems.append(("ledger", f"integrity_check says {verdict}"))
    else:
        problems.append(("ledger", "no ledger after the passes"))
    return problems + _lock_problems(state_dir, "after the passes")


def _lock_problems(state_dir: Path, when: str) -> list[tuple[str, str]]:
    lock = PassLock(state_dir)
    try:
        lock.acquire()
        lock.release()
    except Exception as exc:  # LockHeldError, or an OSError from a broken state directory
        return [("lock", f"cannot take the pass lock {when}: {exc}")]
    return []


def record_clean_pass(ssh_server: SshServer, root: Path) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Run one pass without a kill; return its GLPI requests as (method, path) in order, and the ticket ids."""
    world = CrashWorld(root, ssh_server)
    try:
        child = world.start_poll("clean-pass")
        try:
            child.wait(WAIT_S * 2)
        except subprocess.TimeoutExpired:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(WAIT_S)
        if child.returncode != 0:
            log = (root / "clean-pass.log").read_text(errors="replace")
            raise RuntimeError(f"the clean pass exited {child.returncode}:\n{log[-3000:]}")
        return [(request.method, request.path) for request in world.sim.requests], dict(world.tickets)
    finally:
        world.close()


def kill_points(requests: list[tuple[str, str]]) -> list[KillPoint]:
    """Return every kill point of a pass whose GLPI requests were `requests`."""
    seen: Counter[tuple[str, str]] = Counter()
    numbered = []
    for method, path in requests:
        seen[(method, path)] += 1
        numbered.append((f"{method} {path}", seen[(method, path)]))
    points = [KillPoint(kind, target, nth) for kind in ("glpi-before", "glpi-after") for target, nth in numbered]
    points += [KillPoint("action", key) for key in ("http", "systemd", "compose")]
    return points + [KillPoint(kind, key) for kind in ("artifact-file", "artifact", "memory") for key in TICKETS]


# A representative subset: a claim, status changes, messages whose response was lost, each action, one
# artifact rename, one artifact commit and one memory POST. `{key}` stands for that ticket's id.
QUICK = (
    "glpi-before POST /token #1",
    "glpi-after POST /Assistance/Ticket/{systemd}/Timeline/Followup #1",
    "glpi-before PATCH /Assistance/Ticket/{compose} #1",
    "glpi-after POST /Assistance/Ticket/{compose}/Timeline/Solution #1",
    "glpi-after POST /Assistance/Ticket/{invalid}/Timeline/Followup #2",
    "glpi-before PATCH /Assistance/Ticket/{invalid} #1",
    "action http",
    "action systemd",
    "action compose",
    "artifact-file invalid",
    "artifact systemd",
    "memory compose",
)


def quick_points(points: list[KillPoint], tickets: dict[str, int]) -> list[KillPoint]:
    """Return the QUICK subset of `points`; raise when one of its labels matches no point."""
    by_label = {point.label: point for point in points}
    labels = [label.format(**tickets) for label in QUICK]
    missing = [label for label in labels if label not in by_label]
    if missing:
        raise ValueError(f"kill points missing from this pass: {missing}")
    return [by_label[label] for label in labels]


def run_matrix(
    ssh_server: SshServer, base: Path, points: list[KillPoint], variants: tuple[bool, ...] = (False, True)
) -> list[KillResult]:
    """Run each kill point once per variant (False: state kept, True: state directory deleted after the kill)."""
    results = []
    for number, point in enumerate(points):
        for lose_state in variants:
            root = base / f"kill-{number:03d}{'-lost' if lose_state else ''}"
            results.append(run_kill_point(ssh_server, root, point, lose_state=lose_state))
    return results


CATEGORIES = (
    "double_execution", "unanswered", "duplicate_message", "wrong_outcome", "interrupted_wording",
    "half_written", "missing_artifact", "missing_memory", "ledger", "lock", "not_reached", "pass_error",
)  # fmt: skip


def summarize(results: list[KillResult]) -> dict[str, Any]:
    """Return the figures of a run: kill points by kind and the count of each kind of problem."""
    found = Counter(category for result in results for category, _ in result.problems)
    return {
        "kill_points": len(results),
        "kill_points_by_kind": dict(sorted(Counter(result.kind for result in results).items())),
        "kill_points_with_state_lost": sum(1 for result in results if result.lose_state),
        "problems": {category: found[category] for category in CATEGORIES},
        "double_executions": found["double_execution"],
        "unanswered_tickets": found["unanswered"],
        "duplicate_messages": found["duplicate_message"],
        "half_written_files": found["half_written"],
        "interrupted_reports": sum(list(result.outcomes.values()).count("interrupted") for result in results),
        # Interrupted reports for an action that never ran: with its ledger lost, the bot cannot tell.
        "interrupted_never_ran": sum(
            1
            for result in results
            for key, outcome in result.outcomes.items()
            if outcome == "interrupted" and not result.state_changes.get(TICKET_OPERATIONS.get(key, ""))
        ),
        "read_only_reruns": sum(1 for result in results if result.http_checks > 1),
        "memory_reposts": sum(result.memory_reposts for result in results),
        "seconds": round(sum(result.seconds for result in results), 1),
        "failures": [
            f"{result.label}{' (state lost)' if result.lose_state else ''}: {category}: {message}"
            for result in results
            for category, message in result.problems
        ],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the matrix (or --quick, the subset) against a private sshd; print the figures; exit 1 on a problem."""
    parser = argparse.ArgumentParser(prog="python -m tests.crashkit", description=main.__doc__)
    parser.add_argument("--quick", action="store_true", help="run the representative subset only")
    parser.add_argument("--out", type=Path, help="also write the figures and every result to this JSON file")
    options = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="glpibot-crash-"))
    logging.basicConfig(filename=str(base / "passes.log"), level=logging.INFO, format="%(name)s %(message)s")
    server = SshServer(base / "sshd")
    server.start()
    try:
        requests, tickets = record_clean_pass(server, base / "clean")
        points = kill_points(requests)
        if options.quick:
            points = quick_points(points, tickets)
        results = run_matrix(server, base, points)
    finally:
        server.stop()
    figures = summarize(results)
    figures["command"] = "python -m tests.crashkit" + (" --quick" if options.quick else "")
    if options.out:
        options.out.write_text(json.dumps({**figures, "results": [asdict(r) for r in results]}, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    if figures["failures"]:
        print(f"kept the worlds and the log of the passes in {base}", file=sys.stderr)
        return 1
    shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
