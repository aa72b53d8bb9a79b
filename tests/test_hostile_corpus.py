"""The hostile-input corpus in tests/data/hostile: every case reaches its expected outcome and nothing runs.

Each case runs the way a pass handles a ticket before any step (extract,
parse, policy) inside a guard that records and fails every socket connect,
process start and action run. A representative slice then runs through a
whole pass against the GLPI simulator. With GLPIBOT_RELIABILITY_REPORT set
to a file path, test_corpus_summary writes the figures there as JSON.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from glpibot.actions import all_actions, get_action
from glpibot.actions.base import ActionContext
from glpibot.config import Config, config_from_dict
from glpibot.errors import SpecError, SpecIssue
from glpibot.exitcodes import ExitCode
from glpibot.policy import check_policy
from glpibot.spec import extract, yaml_loader
from glpibot.spec.model import Spec
from glpibot.spec.validate import parse_spec, parse_ticket_body, validate_text
from tests.botenv import BotEnv, spec_body
from tests.httpservers import LocalHttpServer, Reply

CORPUS = Path(__file__).parent / "data" / "hostile"
MANIFEST: dict[str, Any] = json.loads((CORPUS / "cases.json").read_text(encoding="ascii"))
CASES: list[dict[str, Any]] = MANIFEST["cases"]
BY_ID = {case["id"]: case for case in CASES}
CATEGORIES = {
    "alias_bomb", "deep_nesting", "huge_body", "invalid_utf8", "bom", "tabs", "crlf", "nbsp", "html_entities",
    "duplicate_keys", "yaml11_types", "unknown_names", "wrong_types", "injection", "path_traversal",
    "url_tricks", "name_tricks", "lookalikes",
}
# The only messages that span lines: both end with an example spec.
MULTI_LINE_PREFIXES = ("no spec found:", "the spec is empty;")
# Tags the bundled follow-up template and the run-marker footer write.
FOLLOWUP_TAGS = {"p", "br", "ul", "li", "strong", "code", "pre", "small"}
HANG_BOUND_S = 30.0  # far above any real time; only a hang exceeds it
REPORT_ENV = "GLPIBOT_RELIABILITY_REPORT"


def case_ids(cases: list[dict[str, Any]]) -> list[str]:
    return [case["id"] for case in cases]


def case_text(case: dict[str, Any]) -> str:
    """Return the text glpibot reads: a file that is not valid UTF-8 is decoded with replacement, as a client does."""
    data = (CORPUS / case["file"]).read_bytes()
    return data.decode("utf-8", errors="replace") if case["encoding"] == "bytes" else data.decode("utf-8")


def ticket_body(case: dict[str, Any]) -> str:
    """Return the body of a ticket carrying the case: a spec text as GLPI's editor stores it, a body as is."""
    text = case_text(case)
    return spec_body(text) if case["input"] == "spec" else text


def corpus_config(root: Path) -> Config:
    """Return the corpus's policy config, with a GLPI section that nothing contacts."""
    data = json.loads(json.dumps(MANIFEST["config"]))
    data["hosts"]["svc-auto"]["known_hosts"] = str(root / "known_hosts")
    data["glpi"] = {"url": "http://127.0.0.1:9", "client_id": "corpus", "username": "bot", "category": "Bot"}
    data["state_dir"] = str(root / "state")
    return config_from_dict(data)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return corpus_config(tmp_path_factory.mktemp("hostile"))


# The guard


class GuardTripped(Exception):
    """Raised by the guard in place of a connect, a process start or an action run."""


@dataclass
class Guard:
    """Records and fails each call a rejected spec must never cause: connects, process starts, action runs.

    Connections to `allowed` (host, port) pairs go through: the simulator
    during a pass, or the one test server an accepted URL points at.
    """

    allowed: set[tuple[str, int]] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)

    def trip(self, call: str) -> GuardTripped:
        self.calls.append(call)
        return GuardTripped(call)


@contextmanager
def guarded(
    monkeypatch: pytest.MonkeyPatch, *, allowed: set[tuple[str, int]] | None = None, actions_may_run: bool = False
) -> Iterator[Guard]:
    """Install the guard for the block; with `actions_may_run`, action runs go through but connects and processes stay guarded."""
    guard = Guard(allowed=set(allowed or ()))
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and (str(address[0]), int(address[1])) in guard.allowed:
            return real_connect(sock, address)
        raise guard.trip(f"socket connect to {address!r}")

    def connect_ex(sock: socket.socket, address: Any) -> int:
        raise guard.trip(f"socket connect_ex to {address!r}")

    def popen(*args: Any, **kwargs: Any) -> Any:
        raise guard.trip(f"subprocess.Popen {args[:1]!r}")

    def system(command: str) -> int:
        raise guard.trip(f"os.system {command!r}")

    with monkeypatch.context() as patch:
        patch.setattr(socket.socket, "connect", connect)
        patch.setattr(socket.socket, "connect_ex", connect_ex)
        patch.setattr(subprocess, "Popen", popen)
        patch.setattr(os, "system", system)
        if not actions_may_run:
            for action in all_actions():
                patch.setattr(type(action), "run", _tripping_run(guard, action.name))
        yield guard


def _tripping_run(guard: Guard, name: str) -> Any:
    def run(self: Any, step: Any, context: Any) -> Any:
        raise guard.trip(f"action {name} run")

    return run


# Judging one case


@dataclass
class Outcome:
    """What one case did: the SpecError kind and issues, the spec when accepted, or an unexpected exception."""

    kind: str
    issues: list[SpecIssue] = field(default_factory=list)
    spec: Spec | None = None
    crash: BaseException | None = None


def evaluate(text: str, input_kind: str, config: Config) -> Outcome:
    """Run a case through extraction, parsing and policy, as a pass does before its first step."""
    try:
        spec = parse_ticket_body(text) if input_kind == "body" else parse_spec(text)
        check_policy(spec, config)
    except SpecError as exc:
        return Outcome(kind=exc.kind, issues=exc.issues)
    except Exception as exc:  # noqa: BLE001 - any other exception is a crash, which the corpus counts
        return Outcome(kind="crash", crash=exc)
    return Outcome(kind="accepted", spec=spec)


def field_value(spec: Spec, path: str) -> Any:
    """Return the value at `host`, `reason` or `params.<name>` of the first step of a parsed spec."""
    step = spec.steps[0]
    if path == "reason":
        return spec.reason
    if path == "host":
        return step.host
    if path.startswith("params."):
        return step.params[path.removeprefix("params.")]
    raise KeyError(path)


def reads_on_one_line(issue: SpecIssue) -> bool:
    """Tell whether an issue's path and message fit on one line, the two documented messages apart."""
    if len(issue.path.splitlines()) > 1:
        return False
    return len(issue.message.splitlines()) <= 1 or issue.message.startswith(MULTI_LINE_PREFIXES)


def named_issue(outcome: Outcome, path: str, message: str) -> SpecIssue | None:
    """Return the first issue that names `path` and whose message contains `message`, or None."""
    return next((issue for issue in outcome.issues if issue.path == path and message in issue.message), None)


def describe(outcome: Outcome) -> str:
    if outcome.crash is not None:
        return f"crash: {type(outcome.crash).__name__}: {outcome.crash}"
    return f"{outcome.kind}: " + " | ".join(str(issue) for issue in outcome.issues)


# The manifest and the files


def _load_generator() -> Any:
    module_spec = importlib.util.spec_from_file_location("hostile_generate", CORPUS / "generate.py")
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_corpus_files_current() -> None:
    generator = _load_generator()

    files, manifest = generator.build()

    assert generator.stale_files(files, manifest) == []


def test_corpus_size() -> None:
    assert len(CASES) >= 150


def test_corpus_categories() -> None:
    counts = Counter(case["category"] for case in CASES)

    assert set(counts) == CATEGORIES
    assert min(counts.values()) >= 5


def test_corpus_ids_unique() -> None:
    assert len(BY_ID) == len(CASES)


# Every case


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_case_outcome(case: dict[str, Any], config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    with guarded(monkeypatch) as guard:
        outcome = evaluate(case_text(case), case["input"], config)

    assert outcome.crash is None, describe(outcome)
    assert guard.calls == []
    assert outcome.kind == case["kind"], describe(outcome)
    if case["kind"] == "accepted":
        assert outcome.spec is not None
        assert field_value(outcome.spec, case["path"]) == case["value"]
    else:
        assert named_issue(outcome, case["path"], case["message"]) is not None, describe(outcome)
    assert all(reads_on_one_line(issue) for issue in outcome.issues), describe(outcome)


# Size limits: rejected before parsing


LIMIT_CASES = [case for case in CASES if case.get("limit")]


@dataclass
class ParserSpy:
    """Counts calls of the HTML and YAML parsing entry points."""

    html: int = 0
    yaml: int = 0


@pytest.fixture
def parser_spy(monkeypatch: pytest.MonkeyPatch) -> ParserSpy:
    spy = ParserSpy()
    real_convert, real_loader_init = extract._convert, yaml_loader._StrictLoader.__init__

    def convert(body: str) -> Any:
        spy.html += 1
        return real_convert(body)

    def loader_init(self: Any, stream: str) -> None:
        spy.yaml += 1
        real_loader_init(self, stream)

    monkeypatch.setattr(extract, "_convert", convert)
    monkeypatch.setattr(yaml_loader._StrictLoader, "__init__", loader_init)
    return spy


def test_limit_cases_present() -> None:
    assert {case["limit"] for case in LIMIT_CASES} == {"body", "yaml"}


@pytest.mark.parametrize("case", LIMIT_CASES, ids=case_ids(LIMIT_CASES))
def test_oversize_not_parsed(case: dict[str, Any], config: Config, parser_spy: ParserSpy) -> None:
    started = time.monotonic()
    outcome = evaluate(case_text(case), case["input"], config)
    elapsed = time.monotonic() - started

    assert outcome.kind == "invalid"
    assert parser_spy.yaml == 0
    if case["limit"] == "body":
        assert parser_spy.html == 0
    assert elapsed < HANG_BOUND_S


# Bytes that are not UTF-8


BYTES_CASES = [case for case in CASES if case["encoding"] == "bytes"]


def _validate_spec_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "glpibot", "validate-spec", *args]
    root = Path(__file__).resolve().parent.parent
    return subprocess.run(command, input=stdin, capture_output=True, timeout=120, cwd=root)


@pytest.mark.parametrize("case", BYTES_CASES, ids=case_ids(BYTES_CASES))
def test_bytes_cli_rejects_file(case: dict[str, Any]) -> None:
    result = _validate_spec_cli(str(CORPUS / case["file"]))

    assert result.returncode == ExitCode.USAGE
    assert b"is not valid UTF-8 (byte " in result.stderr
    assert b"Traceback" not in result.stderr
    assert result.stdout == b""


def test_bytes_cli_rejects_stdin() -> None:
    case = BY_ID["unit-latin1"]

    result = _validate_spec_cli("-", stdin=(CORPUS / case["file"]).read_bytes())

    assert result.returncode == ExitCode.USAGE
    assert b"is not valid UTF-8 (byte " in result.stderr


@pytest.mark.parametrize("case", BYTES_CASES, ids=case_ids(BYTES_CASES))
def test_bytes_as_text_name_field(case: dict[str, Any], config: Config) -> None:
    issues = validate_text(case_text(case), config)

    assert any(issue.path == case["path"] and case["message"] in issue.message for issue in issues), issues


# Accepted free text reaches only the allowed server


ACCEPTED_HTTP = [
    case for case in CASES
    if case["kind"] == "accepted" and "action: http_check" in case_text(case) and "127.0.0.1:8080" in case_text(case)
]


def test_accepted_http_cases_present() -> None:
    assert len(ACCEPTED_HTTP) >= 10


@pytest.mark.parametrize("case", ACCEPTED_HTTP, ids=case_ids(ACCEPTED_HTTP))
def test_accepted_http_only_allowed_socket(case: dict[str, Any], config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    with LocalHttpServer() as server:
        server.route("/health", Reply(200, b"ok\n"))
        text = case_text(case).replace("127.0.0.1:8080", f"127.0.0.1:{server.port}")
        spec = parse_spec(text)
        check_policy(spec, config)
        step = spec.steps[0]
        with guarded(monkeypatch, allowed={("127.0.0.1", server.port)}, actions_may_run=True) as guard:
            result = get_action(step.action).run(step, ActionContext(config=config))
        requests = list(server.requests)

    assert guard.calls == []
    assert len(requests) == 1
    assert result.summary


# A slice through whole passes


SLICE = [case for case in CASES if case.get("pass_slice")]


def test_slice_covers_categories() -> None:
    assert {case["category"] for case in SLICE} == CATEGORIES
    assert len(SLICE) >= 25


@pytest.mark.parametrize("case", SLICE, ids=case_ids(SLICE))
def test_slice_body_same_outcome(case: dict[str, Any], config: Config) -> None:
    outcome = evaluate(ticket_body(case), "body", config)

    assert outcome.kind == case["kind"], describe(outcome)
    assert named_issue(outcome, case["path"], case["message"]) is not None, describe(outcome)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attributes: list[tuple[str, str | None]] = []
        self.text_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.extend(attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.text_parts.append(data)


def parse_followup(html_text: str) -> _Tags:
    parser = _Tags()
    parser.feed(html_text)
    parser.close()
    return parser


def _slice_config(bot: BotEnv) -> None:
    data = json.loads(json.dumps(MANIFEST["config"]))
    data["hosts"]["svc-auto"]["known_hosts"] = str(bot.root / "known_hosts")
    bot.overrides.update(data)


def test_slice_pass_blocks_all(bot: BotEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    _slice_config(bot)
    tickets = {case["id"]: bot.ticket(f"hostile {case['id']}", content=ticket_body(case)) for case in SLICE}
    simulator = ("127.0.0.1", int(bot.sim.url.rsplit(":", 1)[1].split("/")[0]))

    with guarded(monkeypatch, allowed={simulator}) as guard:
        summary = bot.run()

    assert summary.exit_code == ExitCode.OK
    assert guard.calls == []
    assert [case_id for case_id, ticket in tickets.items() if bot.status(ticket) != 4] == []


def _blocked_followups(bot: BotEnv, ticket: int) -> list[str]:
    return [item["content"] for item in bot.sim.followups(ticket) if "glpibot could not complete" in item["content"]]


def test_slice_followups_name_field(bot: BotEnv) -> None:
    _slice_config(bot)
    tickets = {case["id"]: bot.ticket(f"hostile {case['id']}", content=ticket_body(case)) for case in SLICE}

    bot.run()

    missing: list[str] = []
    for case_id, ticket in tickets.items():
        case = BY_ID[case_id]
        followups = _blocked_followups(bot, ticket)
        text = "".join(parse_followup(followups[-1]).text_parts) if followups else ""
        where = case["path"] or "(spec)"
        if len(followups) != 1 or where not in text or case["message"] not in text:
            missing.append(case_id)
    assert missing == []


def test_slice_followups_no_raw_tags(bot: BotEnv) -> None:
    _slice_config(bot)
    tickets = [bot.ticket(f"hostile {case['id']}", content=ticket_body(case)) for case in SLICE]

    bot.run()

    tags: set[str] = set()
    attributes: list[tuple[str, str | None]] = []
    for ticket in tickets:
        for item in bot.sim.followups(ticket):
            parsed = parse_followup(item["content"])
            tags |= parsed.tags
            attributes.extend(parsed.attributes)
    assert tags <= FOLLOWUP_TAGS
    assert attributes == []


def test_slice_no_step_ran(bot: BotEnv) -> None:
    _slice_config(bot)
    tickets = [bot.ticket(f"hostile {case['id']}", content=ticket_body(case)) for case in SLICE]

    bot.run()

    with sqlite3.connect(bot.state_dir / "ledger.sqlite3") as database:
        step_rows = database.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
    artifacts = [(bot.artifact_dir / f"ticket-{ticket}.md").read_text(encoding="utf-8") for ticket in tickets]
    assert step_rows == 0
    assert [text for text in artifacts if "- Result: passed" in text or "- Result: failed" in text] == []
    assert [record["outcome"] for record in bot.memory_records()] == ["pending"] * len(tickets)


# The figures


def corpus_summary(config: Config, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run every case once and count outcomes by category and kind."""
    by_category: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    by_category_kind: dict[str, Counter[str]] = {}
    blocked_naming_field = accepted_as_data = crashes = mismatches = 0
    with guarded(monkeypatch) as guard:
        for case in CASES:
            outcome = evaluate(case_text(case), case["input"], config)
            by_category[case["category"]] += 1
            by_kind[outcome.kind] += 1
            by_category_kind.setdefault(case["category"], Counter())[outcome.kind] += 1
            crashes += outcome.crash is not None
            if outcome.kind == "accepted":
                accepted_as_data += 1
                matched = case["kind"] == "accepted" and field_value(outcome.spec, case["path"]) == case["value"]  # type: ignore[arg-type]
            else:
                named = named_issue(outcome, case["path"], case["message"]) is not None
                blocked_naming_field += named
                matched = named and outcome.kind == case["kind"]
            mismatches += not matched
    return {
        "cases": len(CASES),
        "by_category": dict(sorted(by_category.items())),
        "by_kind": dict(sorted(by_kind.items())),
        "by_category_kind": {name: dict(sorted(kinds.items())) for name, kinds in sorted(by_category_kind.items())},
        "blocked": len(CASES) - accepted_as_data,
        "blocked_naming_field": blocked_naming_field,
        "accepted_as_data": accepted_as_data,
        "reached_action_socket_or_shell": len(guard.calls),
        "crashes": crashes,
        "outcome_mismatches": mismatches,
        "pass_slice": len(SLICE),
        "bytes_cases_through_cli": len(BYTES_CASES),
        "oversize_cases_not_parsed": len(LIMIT_CASES),
        "accepted_http_cases_run_against_local_server": len(ACCEPTED_HTTP),
        "command": f"{REPORT_ENV}=/tmp/hostile-figures.json python -m pytest -q tests/test_hostile_corpus.py",
    }


def test_corpus_summary(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = corpus_summary(config, monkeypatch)
    report_path = os.environ.get(REPORT_ENV)
    if report_path:
        Path(report_path).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")

    assert summary["crashes"] == 0
    assert summary["reached_action_socket_or_shell"] == 0
    assert summary["blocked_naming_field"] == summary["blocked"]
    assert summary["outcome_mismatches"] == 0
