"""Fault-matrix helpers: record the GLPI requests of a clean pass, replay it with one fault, check the result.

A cell is one request of the clean pass (by method, path and occurrence)
times one fault kind. Each cell gets a fresh simulator and state directory,
and the fault hits that request only. Passes then run until the scenario is
settled or `MAX_PASSES` passes have run. Settled means exit 0, no attempt
open in the ledger, and every ticket Solved or Pending with its follow-up.
Each pass runs in this process through `run_pass`, as the timer's
`glpibot poll` would, with `glpi.timeout_s` set to `TIMEOUT_S`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from glpibot.exitcodes import ExitCode
from glpibot.logs import TicketFilter
from glpibot.redact import RedactingFilter, forget_secrets
from glpibot.testing.faults import Fault
from glpibot.testing.responses import PERMISSION_TITLE, error_body
from glpibot.testing.simulator import GlpiSimulator
from glpibot.workflow.pass_runner import run_pass
from tests.botenv import BotEnv
from tests.faultscenario import Scenario, check_invariants, matrix_config, open_attempts

TIMEOUT_S = 1.0  # glpi.timeout_s of matrix runs; small, so read timeouts and trickles stay quick
HANG_MARGIN_S = 3.0  # added to 4 x timeout_s: a hang detector, not a speed target
MAX_PASSES = 3
IDLE_WAIT_S = 15.0  # how long to wait for the simulator to finish a delayed request between passes

_TICKET_PATH = re.compile(r"^/Assistance/Ticket/(\d+)(?:/|$)")


def pass_bound_s(timeout_s: float = TIMEOUT_S) -> float:
    """Return the longest a pass may take before the matrix calls it a hang, in seconds."""
    return 4 * timeout_s + HANG_MARGIN_S


# Requests of the clean pass


@dataclass(frozen=True)
class RequestSlot:
    """One request of the clean pass: its position, method, path and occurrence of that method and path."""

    index: int
    method: str
    path: str
    occurrence: int

    @property
    def label(self) -> str:
        return f"{self.method} {self.path} #{self.occurrence}"

    @property
    def ticket_id(self) -> int | None:
        match = _TICKET_PATH.match(self.path)
        return int(match.group(1)) if match else None

    def fault(self, **effects: Any) -> Fault:
        """Return a fault that hits this request only, counted from a fresh simulator."""
        return Fault(method=self.method, path=f"^{re.escape(self.path)}$", nth=self.occurrence, **effects)


def slots_from(requests: list[Any]) -> list[RequestSlot]:
    """Number the recorded simulator requests by method and path."""
    seen: Counter[tuple[str, str]] = Counter()
    slots = []
    for index, request in enumerate(requests):
        seen[(request.method, request.path)] += 1
        slots.append(RequestSlot(index, request.method, request.path, seen[(request.method, request.path)]))
    return slots


# Fault kinds


@dataclass(frozen=True)
class FaultKind:
    """One kind of failure and the fault arguments that produce it; `timeout_s` scales the slow ones."""

    name: str
    description: str
    effects: Callable[[float], dict[str, Any]]
    patch_only: bool = False

    def applies_to(self, slot: RequestSlot) -> bool:
        return not self.patch_only or slot.method == "PATCH"


INVALID_TOKEN_BODY = error_body("ERROR_INVALID_PARAMETER", "Invalid OAuth token", "The access token has expired")
MISSING_RIGHT_BODY = error_body("ERROR_RIGHT_MISSING", PERMISSION_TITLE)

FAULT_KINDS: tuple[FaultKind, ...] = (
    FaultKind("http500", "HTTP 500 with an empty body", lambda t: {"status": 500}),
    FaultKind("http502", "HTTP 502 from the proxy", lambda t: {"status": 502, "body": "<h1>Bad Gateway</h1>"}),
    FaultKind("http503", "HTTP 503 from the proxy", lambda t: {"status": 503, "body": "<h1>Unavailable</h1>"}),
    FaultKind("reset", "connection reset, no response", lambda t: {"drop": True}),
    FaultKind("read_timeout", "response delayed past glpi.timeout_s", lambda t: {"delay_s": 2 * t}),
    FaultKind("trickle", "response sent byte by byte over 10 x glpi.timeout_s", lambda t: {"trickle_s": 10 * t}),
    FaultKind("expired_401", "HTTP 401 for the access token", lambda t: {"unauthorized": True}),
    FaultKind("invalid_token_400", "HTTP 400 Invalid OAuth token", lambda t: {"status": 400, "body": INVALID_TOKEN_BODY}),
    FaultKind("missing_right_403", "HTTP 403 missing right", lambda t: {"status": 403, "body": MISSING_RIGHT_BODY}),
    FaultKind(
        "status_kept", "HTTP 200 but the status did not change", lambda t: {"ignore_status_change": True}, patch_only=True
    ),
    FaultKind("applied_500", "write applied, response lost as HTTP 500", lambda t: {"status": 500, "apply_then_fail": True}),
    FaultKind("applied_502", "write applied, response lost as HTTP 502", lambda t: {"status": 502, "apply_then_fail": True}),
)
KINDS_BY_NAME = {kind.name: kind for kind in FAULT_KINDS}


def expected_exit(slot: RequestSlot, kind: FaultKind) -> ExitCode:
    """Return the exit code the first pass must end with when this cell's fault hits.

    0 when the client absorbs the fault: a GET is retried after a 502, 503,
    reset or timeout, and a token is renewed once after a 401 or an
    invalid-token 400. 3 when GLPI is unreachable or rejects the credentials.
    1 for any other GLPI error.
    """
    token = slot.path == "/token"
    if kind.name in ("expired_401", "invalid_token_400", "missing_right_403") and token:
        return ExitCode.GLPI_UNAVAILABLE  # the token endpoint rejecting the bot is rejected credentials
    if kind.name in ("expired_401", "invalid_token_400"):
        return ExitCode.OK
    if kind.name in ("reset", "read_timeout", "trickle"):
        return ExitCode.OK if slot.method == "GET" else ExitCode.GLPI_UNAVAILABLE
    if kind.name in ("http502", "http503", "applied_502") and slot.method == "GET":
        return ExitCode.OK
    return ExitCode.TICKET_ERROR


# Running one cell


@contextlib.contextmanager
def bot_secrets(sim: GlpiSimulator) -> Iterator[None]:
    """Set the bot's GLPI secrets for this simulator in the environment, as the timer's unit would."""
    values = {
        "GLPIBOT_GLPI_CLIENT_SECRET": sim.client_secret,
        "GLPIBOT_GLPI_PASSWORD": sim.users["homelab-bot"][1],
        "CREDENTIALS_DIRECTORY": None,
    }
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            _set_env(name, value)
        yield
    finally:
        for name, value in saved.items():
            _set_env(name, value)


def _set_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


class LineCapture(logging.Handler):
    """Collect glpibot's log lines as the CLI formats them, `ticket=<id>` included, secrets masked."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s%(ticket)s: %(message)s"))
        self.addFilter(TicketFilter())
        self.addFilter(RedactingFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def __enter__(self) -> "LineCapture":
        logger = logging.getLogger("glpibot")
        self._level = logger.level
        logger.setLevel(logging.INFO)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        logger = logging.getLogger("glpibot")
        logger.removeHandler(self)
        logger.setLevel(self._level)


def wait_until_idle(sim: GlpiSimulator, limit_s: float = IDLE_WAIT_S) -> None:
    """Wait until the simulator has handled every request, so a delayed write lands before the next pass.

    The timer starts passes a minute apart, far longer than any delay the matrix injects.
    """
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        busy = [r for r in sim.requests if r.status is None and not any(f.drop for f in r.faults)]
        if not busy:
            return
        time.sleep(0.05)


@dataclass
class CellResult:
    """What one cell did: the exit code, duration and log of each pass, and what went wrong."""

    request: str
    fault: str
    expected_exit: int
    exit_codes: list[int] = field(default_factory=list)
    durations_s: list[float] = field(default_factory=list)
    passes_needed: int | None = None  # None: not settled within MAX_PASSES
    violations: list[str] = field(default_factory=list)
    first_pass_log: list[str] = field(default_factory=list)
    checks_run: int = 0  # requests the http_check steps sent over all passes; the clean pass sends 2


def run_cell(root: Path, slot: RequestSlot, kind: FaultKind, timeout_s: float = TIMEOUT_S) -> CellResult:
    """Seed the scenario in a fresh simulator, inject the fault, run passes until settled and check everything."""
    forget_secrets()
    result = CellResult(slot.label, kind.name, int(expected_exit(slot, kind)))
    sim = GlpiSimulator().start()
    try:
        with bot_secrets(sim):
            _run_passes(result, sim, root, slot, kind, timeout_s)
    finally:
        sim.stop()
    return result


def record_clean_pass(root: Path, timeout_s: float = TIMEOUT_S) -> tuple[list[RequestSlot], CellResult]:
    """Run the scenario with no fault; return its GLPI requests, numbered, and the cell result."""
    forget_secrets()
    result = CellResult("(none)", "none", int(ExitCode.OK))
    sim = GlpiSimulator().start()
    try:
        with bot_secrets(sim):
            _run_passes(result, sim, root, None, None, timeout_s, max_passes=1)
        slots = slots_from(sim.requests)
    finally:
        sim.stop()
    return slots, result


def _run_passes(
    result: CellResult,
    sim: GlpiSimulator,
    root: Path,
    slot: RequestSlot | None,
    kind: FaultKind | None,
    timeout_s: float,
    max_passes: int = MAX_PASSES,
) -> None:
    """Run up to `max_passes` passes, stopping once the scenario is settled; fill in `result`."""
    env = BotEnv(sim=sim, root=root)
    scenario = Scenario.seed(env)
    config = matrix_config(env, timeout_s)
    fault = slot.fault(**kind.effects(timeout_s)) if slot is not None and kind is not None else None
    if fault is not None:
        sim.add_fault(fault)
    for number in range(1, max_passes + 1):
        with LineCapture() as capture:
            started = time.monotonic()
            summary = run_pass(config)
            result.durations_s.append(round(time.monotonic() - started, 3))
        result.exit_codes.append(int(summary.exit_code))
        if number == 1:
            result.first_pass_log = [line for line in capture.lines if not line.startswith("INFO")]
        wait_until_idle(sim)
        if summary.exit_code == ExitCode.OK and not check_invariants(env, scenario) and open_attempts(env) == 0:
            result.passes_needed = number
            break
    result.checks_run = len(sim.other_requests)
    result.violations = _cell_violations(result, slot, timeout_s) + check_invariants(env, scenario)
    if fault is not None and slot is not None and fault.seen < slot.occurrence:
        result.violations.append(f"the fault never hit: {slot.label} was not requested")


def _cell_violations(result: CellResult, slot: RequestSlot | None, timeout_s: float) -> list[str]:
    problems = []
    if result.passes_needed is None:
        problems.append(f"not settled after {MAX_PASSES} passes (exit codes {result.exit_codes})")
    if result.exit_codes[0] != result.expected_exit:
        problems.append(f"first pass exited {result.exit_codes[0]}, expected {result.expected_exit}")
    for number, duration in enumerate(result.durations_s, start=1):
        if duration > pass_bound_s(timeout_s):
            problems.append(f"pass {number} took {duration:.1f} s, over the {pass_bound_s(timeout_s):.0f} s bound")
    if slot is not None:
        problems.extend(_log_problems(result, slot))
    return problems


def _log_problems(result: CellResult, slot: RequestSlot) -> list[str]:
    """Check that the first pass's warnings and errors name the failed request and its ticket."""
    request = f"{slot.method} {slot.path}"
    named = re.compile(re.escape(request) + r"(?![\w/])")  # not a longer path that starts the same way
    naming = [line for line in result.first_pass_log if named.search(line)]
    if not naming:
        return [f"no warning or error names {request}"]
    problems = []
    if result.expected_exit != ExitCode.OK and not any(line.startswith("ERROR") for line in naming):
        problems.append(f"no error line names {request}")
    ticket_id = slot.ticket_id
    if ticket_id is not None and not any(f"ticket={ticket_id}" in line for line in naming):
        problems.append(f"no log line about {request} carries ticket={ticket_id}")
    return problems
