"""The HTTP side of the GLPI simulator: request parsing, fault effects and raw response writing."""

from __future__ import annotations

import json
import logging
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from glpibot.testing.responses import NOT_AUTHENTICATED, HttpResponse, encode_json, json_response
from glpibot.testing.faults import Fault
from glpibot.testing.routes import ApiRequest


@dataclass
class RecordedRequest:
    """One request as the simulator received it. The token itself is never kept."""

    method: str
    path: str  # without /api.php and without a version prefix such as /v2.2
    query: dict[str, str]
    json: Any  # parsed body, or None when absent or ignored
    status: int | None = None  # None before the response is sent, and for dropped connections
    authorization: bool = False  # whether an Authorization header was sent
    form: dict[str, str] | None = None  # form-encoded body (token requests)
    version: str | None = None  # the version prefix used, for example "v2"
    faults: list[Fault] = field(default_factory=list, repr=False)

if TYPE_CHECKING:
    from glpibot.testing.simulator import GlpiSimulator

logger = logging.getLogger(__name__)

_VERSION_PREFIX = re.compile(r"^/(v\d+(?:\.\d+)*)(?=/)", re.IGNORECASE)
HOLD_LIMIT_S = 120.0  # a held request is released after this long, so a forgotten event cannot hang a test run


def split_path(raw_path: str) -> tuple[bool, str | None, str]:
    """Return (is_api, version, path) for a request path; the API lives under /api.php."""
    if raw_path != "/api.php" and not raw_path.startswith("/api.php/"):
        return False, None, raw_path
    path = raw_path[len("/api.php") :]
    match = _VERSION_PREFIX.match(path)
    if match:
        return True, match.group(1), path[match.end() :]
    return True, None, path


def _fault_response(fault: Fault) -> HttpResponse:
    status = fault.status or 500
    if fault.body is None:
        return HttpResponse(status, b"", {"Content-Type": "application/json"})
    if isinstance(fault.body, bytes):
        return HttpResponse(status, fault.body, {"Content-Type": "text/html; charset=UTF-8"})
    if isinstance(fault.body, str):
        return HttpResponse(status, fault.body.encode("utf-8"), {"Content-Type": "text/html; charset=UTF-8"})
    return HttpResponse(status, encode_json(fault.body), {"Content-Type": "application/json"})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so a client session reuses its connection
    server: "SimulatorServer"
    timeout = 60  # seconds an idle kept-alive connection may wait for its next request

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests read `requests`, not stderr."""

    def _serve(self) -> None:
        sim = self.server.sim
        raw_path, _, query_text = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        is_api, version, path = split_path(raw_path)
        request = self._parse(path, query_text, body)
        recorded = RecordedRequest(
            method=self.command,
            path=path,
            query=request.query,
            json=request.json,
            authorization=request.authorization is not None,
            form=request.form,
            version=version,
        )
        sim.record(recorded, api=is_api)
        faults = sim.faults.select(self.command, path)
        recorded.faults = faults
        response = self._respond(request, faults, is_api)
        if response is None:
            self._reset()
            return
        recorded.status = response.status
        self._write(response, max((fault.trickle_s for fault in faults), default=0.0))

    def _parse(self, path: str, query_text: str, body: bytes) -> ApiRequest:
        query: dict[str, str] = {}
        for key, value in parse_qsl(query_text, keep_blank_values=True):
            if key == "filter[]":
                query["filter"] = f"{query['filter']};{value}" if query.get("filter") else value
            else:
                query[key] = value
        content_type = self.headers.get("Content-Type", "")
        parsed: Any = None
        form = None
        invalid_json = False
        # GLPI reads a JSON body only when the header is exactly application/json;
        # with "; charset=utf-8" the body is silently ignored.
        if content_type == "application/json" and body:
            try:
                parsed = json.loads(body)
            except ValueError:
                invalid_json = True
        elif content_type.startswith("application/x-www-form-urlencoded"):
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return ApiRequest(
            method=self.command,
            path=path,
            query=query,
            json=parsed,
            form=form,
            authorization=self.headers.get("Authorization"),
            invalid_json=invalid_json,
        )

    def _respond(self, request: ApiRequest, faults: list[Fault], is_api: bool) -> HttpResponse | None:
        """Apply the fault effects and the normal handling; None means drop the connection."""
        for fault in faults:
            if fault.hold is not None and not fault.hold_after_apply:
                self._hold(fault)
            elif fault.hold is None and fault.reached is not None:
                fault.reached.set()
            if fault.delay_s:
                time.sleep(fault.delay_s)
        if self.server.stopping.is_set() or any(fault.drop for fault in faults):
            return None
        if any(fault.unauthorized for fault in faults):
            return json_response(401, dict(NOT_AUTHENTICATED))
        failing = next((fault for fault in faults if fault.status is not None), None)
        if failing is not None and not failing.apply_then_fail:
            return _fault_response(failing)
        request.ignore_status_change = any(fault.ignore_status_change for fault in faults)
        try:
            response = self.server.sim.respond_api(request) if is_api else self._respond_other(request)
        except Exception:  # a simulator bug: respond as GLPI does to an uncaught PHP error
            logger.exception("simulator failed on %s %s", request.method, request.path)
            response = HttpResponse(500, b"", {"Content-Type": "application/json"})
        held_after_apply = [fault for fault in faults if fault.hold_after_apply]
        for fault in held_after_apply:
            self._hold(fault)
        if held_after_apply and self.server.stopping.is_set():
            return None
        return _fault_response(failing) if failing is not None else response

    def _hold(self, fault: Fault) -> None:
        """Wait for the fault's hold event, at most HOLD_LIMIT_S and never past the simulator's stop."""
        assert fault.hold is not None
        if fault.reached is not None:
            fault.reached.set()
        deadline = time.monotonic() + HOLD_LIMIT_S
        while not fault.hold.wait(0.05) and not self.server.stopping.is_set() and time.monotonic() < deadline:
            pass

    @staticmethod
    def _respond_other(request: ApiRequest) -> HttpResponse:
        if request.method in ("GET", "HEAD") and request.path == "/health":
            return HttpResponse(200, b"ok", {"Content-Type": "text/plain; charset=UTF-8"})
        return HttpResponse(404, b"Not Found", {"Content-Type": "text/plain; charset=UTF-8"})

    def _write(self, response: HttpResponse, trickle_s: float) -> None:
        body = b"" if self.command == "HEAD" or response.status == 204 else response.body
        reason = HTTPStatus(response.status).phrase if response.status in HTTPStatus._value2member_map_ else "Unknown"
        lines = [f"HTTP/1.1 {response.status} {reason}"]
        lines += [f"{name}: {value}" for name, value in response.headers.items()]
        lines.append(f"Content-Length: {len(response.body) if self.command == 'HEAD' else len(body)}")
        if self.close_connection:
            lines.append("Connection: close")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        try:
            if trickle_s <= 0:
                self.wfile.write(data)
            else:
                pause = trickle_s / len(data)
                for index in range(len(data)):
                    self.wfile.write(data[index : index + 1])
                    self.wfile.flush()
                    time.sleep(pause)
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client went away

    def _reset(self) -> None:
        """Close the socket with a TCP reset and no response at all."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass  # the socket was reset on purpose or by the client


class SimulatorServer(ThreadingHTTPServer):
    """A threading HTTP server that serves one simulator and closes kept-alive connections on stop."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sim: "GlpiSimulator") -> None:
        super().__init__(address, _Handler)
        self.sim = sim
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("simulator connection from %s failed", client_address, exc_info=True)

