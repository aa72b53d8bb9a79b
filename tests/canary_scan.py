"""pytest plugin: search everything a test session wrote for the canary secrets, and fail the session on a hit.

The simulator, the bot fixtures and the sshd fixture use the canary values of
glpibot/testing/canaries.py for every secret. At the end of the session this
plugin searches, for every canary value and for the canary token shape:

- every regular file under pytest's basetemp. SQLite files are dumped as SQL
  text too, because SQLite may split a long value across pages. Loose git
  objects are decompressed first. canary_search.EXCLUDED_FILES lists the
  only files skipped;
- every log record of the session, formatted by glpibot's production handler
  (after RedactingFilter) into `<basetemp>/secret-scan/log-records.log`. The
  raw message of every record from a `glpibot` logger is searched too, before
  any filter runs, because a secret masked only by the handler is one
  handler change away from a leak;
- every follow-up and solution of every GlpiSimulator created in the process,
  read just before it stops and again at the end of the session;
- the stdout and stderr of every CLI run through BotEnv.cli, which appends
  them to `<basetemp>/secret-scan/cli-output.log`;
- the text of every failed test, setup, teardown or collection report.

The counts go to `<basetemp>/secret-scan.json` and one summary line is
printed at the end. Each hit is printed with the canary's name, where it
was found and about 80 characters around it, with every canary masked.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import pytest

from glpibot.logs import production_handler
from glpibot.testing import simulator
from tests.canary_search import Hit, find_canaries, scan_marked_file, scan_tree

SCAN_DIR = "secret-scan"
COUNTS_FILE = "secret-scan.json"
LOG_FILE = "log-records.log"
CLI_FILE = "cli-output.log"


# Log records


class LogRecordScanner(logging.Handler):
    """A root handler that writes every record as production would print it, and searches raw glpibot messages.

    The production handler runs on a copy of the record, because its filters
    change the record and the other handlers (caplog) must see it unchanged.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self.production = production_handler(stream)
        self.records = 0
        self.raw_hits: list[Hit] = []
        self._count_lock = threading.Lock()

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        with self._count_lock:
            self.records += 1
        if record.name == "glpibot" or record.name.startswith("glpibot."):
            try:
                raw = record.getMessage()
            except Exception:  # a malformed call: its text is the format string and the arguments
                raw = f"{record.msg} {record.args}"
            where = f"raw message of a {record.name} record ({record.pathname}:{record.lineno}) in {current_test()}"
            hits = find_canaries(raw, where)
            if hits:
                with self._count_lock:
                    self.raw_hits += hits
        self.production.handle(logging.makeLogRecord(record.__dict__))
        return True

    def emit(self, record: logging.LogRecord) -> None:
        """Unused: handle() does the work."""

    def mark(self, text: str) -> None:
        """Write a marker line (not a record) so a hit in the file can be traced to its test."""
        self.production.acquire()
        try:
            self.stream.write(f"=== {text}\n")
            self.stream.flush()
        finally:
            self.production.release()


def current_test() -> str:
    return os.environ.get("PYTEST_CURRENT_TEST", "no test").rsplit(" (", 1)[0]


# Simulators


class FollowupScanner:
    """Search the follow-ups and solutions of every simulator, each item once."""

    def __init__(self) -> None:
        self.items = 0
        self.hits: list[Hit] = []
        self._seen: "weakref.WeakKeyDictionary[simulator.GlpiSimulator, set[tuple[str, int]]]" = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def __call__(self, sim: simulator.GlpiSimulator) -> None:
        with self._lock:
            seen = self._seen.setdefault(sim, set())
            with sim.lock:
                ticket_ids = list(sim.store.tickets)
            for ticket_id in ticket_ids:
                for kind, items in (("follow-up", sim.followups(ticket_id)), ("solution", sim.solutions(ticket_id))):
                    for item in items:
                        key = (kind, int(item["id"]))
                        if key in seen:
                            continue
                        seen.add(key)
                        self.items += 1
                        where = f"{kind} {item['id']} of ticket {ticket_id} in a simulator of {current_test()}"
                        self.hits += find_canaries(str(item.get("content") or ""), where)


# The session


@dataclass
class SessionScan:
    base: Path
    log_scanner: LogRecordScanner
    followups: FollowupScanner
    cli_outputs: int = 0
    reports: int = 0
    report_hits: list[Hit] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def scan_dir(self) -> Path:
        return self.base / SCAN_DIR


_session: SessionScan | None = None
_saved_levels: dict[str, int] = {}
_LOGGERS_AT_DEBUG = ("glpibot", "urllib3", "paramiko")  # what `glpibot --debug` prints


def record_cli_output(argv: list[str], returncode: int, stdout: str, stderr: str) -> None:
    """Append one CLI run's output to the session's CLI file. Outside a scanning session, do nothing."""
    if _session is None:
        return
    _session.cli_outputs += 1
    with (_session.scan_dir / CLI_FILE).open("a", encoding="utf-8") as handle:
        handle.write(f"=== {current_test()}: {' '.join(argv)} (exit {returncode})\n")
        handle.write(f"--- stdout\n{stdout}\n--- stderr\n{stderr}\n")


def pytest_sessionstart(session: pytest.Session) -> None:
    global _session
    base = session.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    (base / SCAN_DIR).mkdir(exist_ok=True)
    stream = (base / SCAN_DIR / LOG_FILE).open("a", encoding="utf-8")
    log_scanner = LogRecordScanner(stream)
    # First in line, so the raw message is read before any other handler's filter can change it.
    logging.getLogger().handlers.insert(0, log_scanner)
    for name in _LOGGERS_AT_DEBUG:
        _saved_levels[name] = logging.getLogger(name).level
        logging.getLogger(name).setLevel(logging.DEBUG)
    followups = FollowupScanner()
    simulator.STOP_HOOKS.append(followups)
    _session = SessionScan(base=base, log_scanner=log_scanner, followups=followups)


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    if _session is not None:
        _session.log_scanner.mark(nodeid)


def _scan_report(report: pytest.TestReport | pytest.CollectReport, label: str) -> None:
    if _session is None or not report.failed:
        return
    _session.reports += 1
    texts = [report.longreprtext] + [content for _title, content in report.sections]
    for text in texts:
        _session.report_hits += find_canaries(text, f"{label} report of {report.nodeid}")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _scan_report(report, report.when or "test")


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _scan_report(report, "collection")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _session
    scan = _session
    if scan is None:
        return
    _session = None
    logging.getLogger().removeHandler(scan.log_scanner)
    for name, level in _saved_levels.items():
        logging.getLogger(name).setLevel(level)
    scan.log_scanner.stream.close()
    simulator.STOP_HOOKS.remove(scan.followups)
    for sim in list(simulator.INSTANCES):
        scan.followups(sim)

    tree = scan_tree(scan.base, skip=(scan.scan_dir / LOG_FILE, scan.scan_dir / CLI_FILE, scan.base / COUNTS_FILE))
    scan.hits = (
        tree.hits
        + scan_marked_file(scan.scan_dir / LOG_FILE, "a log record as production prints it")
        + scan.log_scanner.raw_hits
        + scan.followups.hits
        + scan_marked_file(scan.scan_dir / CLI_FILE, "CLI output")
        + scan.report_hits
    )
    scan.counts = {
        "hits": len(scan.hits),
        "files": tree.files,
        "log_records": scan.log_scanner.records,
        "followups_and_solutions": scan.followups.items,
        "cli_outputs": scan.cli_outputs,
        "failure_reports": scan.reports,
        "excluded_files": tree.excluded,
        "partly_searched_files": tree.notes,
        "hit_list": [asdict(hit) for hit in scan.hits],
    }
    (scan.base / COUNTS_FILE).write_text(json.dumps(scan.counts, indent=2), encoding="utf-8")
    session.config.stash[_RESULT_KEY] = scan
    if scan.hits and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_RESULT_KEY = pytest.StashKey[SessionScan]()


def summary_line(counts: dict[str, Any]) -> str:
    return (
        f"secret scan: {counts['hits']} hits in {counts['files']} files, {counts['log_records']} log records, "
        f"{counts['followups_and_solutions']} follow-ups, {counts['cli_outputs']} CLI outputs, "
        f"{counts['failure_reports']} failure reports"
    )


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    scan = config.stash.get(_RESULT_KEY, None)
    if scan is None:
        return
    if scan.hits:
        terminalreporter.section("secret scan: canary secrets found", sep="=", red=True, bold=True)
        for hit in scan.hits:
            terminalreporter.line(hit.line(), red=True)
        terminalreporter.line(f"counts and the hit list: {scan.base / COUNTS_FILE}")
    terminalreporter.line(summary_line(scan.counts), red=bool(scan.hits), green=not scan.hits)
