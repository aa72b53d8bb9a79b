"""The memory record, its JSON Lines sink and its HTTP sink against a real server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from glpibot.actions.base import StepResult
from glpibot.config import MemorySettings
from glpibot.outputs.memory import MemoryStoreError, memory_record, store_record
from glpibot.outputs.report import StepReport, TicketReport
from glpibot.redact import forget_secrets, register_secret
from glpibot.testing import canaries

TOKEN = canaries.MEMORY_TOKEN


def make_report(ticket_id: int = 17, attempt: int = 1, outcome: str = "solved") -> TicketReport:
    ran = StepReport(
        index=0,
        action="systemd_remote",
        params={"unit": "wiki.service", "operation": "status"},
        host="host1",
        result=StepResult(ok=True, summary="wiki.service is active", output="long output"),
    )
    skipped = StepReport(index=1, action="http_check", params={"url": "https://wiki.example.test/"})
    return TicketReport(
        ticket_id=ticket_id,
        ticket_name="Wiki café",
        attempt=attempt,
        run_marker=f"glpibot-run {ticket_id}-{attempt}-a1b2c3",
        outcome=outcome,
        kind="ok" if outcome == "solved" else "failed",
        reason="show the wiki state",
        steps=[ran, skipped],
        started_at="2024-06-01T12:00:00Z",
        finished_at="2024-06-01T12:00:05Z",
        artifact_path="docs/generated/glpi-bot/ticket-17.md",
        idempotency_key=f"ticket-{ticket_id}-attempt-{attempt}",
    )


@pytest.fixture(autouse=True)
def _no_secrets() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


# The record


def test_record_fields() -> None:
    record = memory_record(make_report())

    assert record["ticket_id"] == 17
    assert record["outcome"] == "solved"
    assert record["kind"] == "ok"
    assert record["summary"] == "ticket 17: all 2 step(s) passed"
    assert record["artifact"] == "docs/generated/glpi-bot/ticket-17.md"
    assert record["idempotency_key"] == "ticket-17-attempt-1"
    assert record["attempt"] == 1
    assert record["finished_at"] == "2024-06-01T12:00:05Z"


def test_record_lists_steps_that_ran() -> None:
    record = memory_record(make_report())

    assert record["actions"] == [
        {"action": "systemd_remote", "host": "host1", "ok": True, "summary": "wiki.service is active"}
    ]


@pytest.mark.parametrize(("outcome", "expected"), [("solved", "solved"), ("pending", "pending"), ("claimed", "pending")])
def test_record_outcome(outcome: str, expected: str) -> None:
    assert memory_record(make_report(outcome=outcome))["outcome"] == expected


def test_record_without_artifact() -> None:
    report = make_report()
    report.artifact_path = None

    assert memory_record(report)["artifact"] is None


def test_record_redacted() -> None:
    register_secret("s3cret-value")
    report = make_report()
    report.ticket_name = "uses s3cret-value"
    report.steps[0].result.summary = "Authorization: Bearer abcdefghijk123"

    text = json.dumps(memory_record(report))

    assert "s3cret-value" not in text
    assert "abcdefghijk123" not in text
    assert "[REDACTED]" in text


def test_record_is_json() -> None:
    record = memory_record(make_report())

    assert json.loads(json.dumps(record)) == record


# JSON Lines sink


def read_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_jsonl_appends_lines(tmp_path: Path) -> None:
    path = tmp_path / "state" / "memory.jsonl"
    settings = MemorySettings(sink="jsonl", path=path)

    store_record(settings, memory_record(make_report(attempt=1)), token=None)
    store_record(settings, memory_record(make_report(attempt=2)), token=None)

    lines = read_lines(path)
    assert [line["idempotency_key"] for line in lines] == ["ticket-17-attempt-1", "ticket-17-attempt-2"]
    assert "Wiki café" in path.read_text(encoding="utf-8")
    assert path.read_bytes().endswith(b"\n")


def test_jsonl_skips_known_key(tmp_path: Path) -> None:
    path = tmp_path / "memory.jsonl"
    settings = MemorySettings(sink="jsonl", path=path)
    record = memory_record(make_report())

    store_record(settings, record, token=None)
    store_record(settings, record, token=None)

    assert len(read_lines(path)) == 1


def test_jsonl_after_partial_line(tmp_path: Path) -> None:
    path = tmp_path / "memory.jsonl"
    path.write_text('{"idempotency_key": "ticket-1-attempt-1"}\n{"idempotency_key": "ticket-17-att', encoding="utf-8")

    store_record(MemorySettings(sink="jsonl", path=path), memory_record(make_report()), token=None)

    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    assert json.loads(lines[2])["idempotency_key"] == "ticket-17-attempt-1"


def test_jsonl_unwritable_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")

    with pytest.raises(MemoryStoreError, match="memory file"):
        store_record(MemorySettings(sink="jsonl", path=blocker / "memory.jsonl"), memory_record(make_report()), token=None)


def test_sink_none_stores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "memory.jsonl"

    store_record(MemorySettings(sink="none", path=path), memory_record(make_report()), token=None)

    assert not path.exists()


# HTTP sink


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class MemoryServer:
    """A memory service stand-in that records each request and replies with a chosen status."""

    url: str
    requests: list[RecordedRequest] = field(default_factory=list)
    status: int = 201
    body: bytes = b'{"stored": true}'
    location: str | None = None


@pytest.fixture
def memory_server() -> Iterator[MemoryServer]:
    state = MemoryServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (name fixed by http.server)
            length = int(self.headers.get("Content-Length", "0"))
            state.requests.append(RecordedRequest(self.path, dict(self.headers.items()), self.rfile.read(length)))
            self.send_response(state.status)
            if state.location:
                self.send_header("Location", state.location)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/records"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def http_settings(url: str) -> MemorySettings:
    return MemorySettings(sink="http", url=url, timeout_s=5)


def test_http_posts_record(memory_server: MemoryServer) -> None:
    record = memory_record(make_report())

    store_record(http_settings(memory_server.url), record, token=TOKEN)

    assert len(memory_server.requests) == 1
    request = memory_server.requests[0]
    assert request.path == "/records"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Idempotency-Key"] == "ticket-17-attempt-1"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body) == record


def test_http_ignores_proxy_env(memory_server: MemoryServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_proxy = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("HTTP_PROXY", dead_proxy)
    monkeypatch.setenv("http_proxy", dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    store_record(http_settings(memory_server.url), memory_record(make_report()), token=TOKEN)

    assert len(memory_server.requests) == 1


def test_http_error_status(memory_server: MemoryServer) -> None:
    memory_server.status = 500
    memory_server.body = f'{{"error": "database down", "echo": "Bearer {TOKEN}", "raw": "{TOKEN}"}}'.encode()

    with pytest.raises(MemoryStoreError) as caught:
        store_record(http_settings(memory_server.url), memory_record(make_report()), token=TOKEN)

    message = str(caught.value)
    assert "HTTP 500" in message
    assert "database down" in message
    assert TOKEN not in message


def test_http_redirect_not_followed(memory_server: MemoryServer) -> None:
    memory_server.status = 302
    memory_server.location = "http://127.0.0.2:9/login"

    with pytest.raises(MemoryStoreError, match="redirects are not followed") as caught:
        store_record(http_settings(memory_server.url), memory_record(make_report()), token=TOKEN)

    assert "HTTP 302" in str(caught.value)
    assert len(memory_server.requests) == 1


def test_http_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/records"

    with pytest.raises(MemoryStoreError, match="cannot reach the memory service") as caught:
        store_record(http_settings(url), memory_record(make_report()), token=TOKEN)

    assert TOKEN not in str(caught.value)


def test_http_token_missing(memory_server: MemoryServer) -> None:
    with pytest.raises(MemoryStoreError) as caught:
        store_record(http_settings(memory_server.url), memory_record(make_report()), token=None)

    message = str(caught.value)
    assert "GLPIBOT_MEMORY_TOKEN" in message
    assert "memory-token" in message
    assert memory_server.requests == []
