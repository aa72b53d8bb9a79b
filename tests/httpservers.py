"""Real HTTP and HTTPS servers on loopback addresses, run in threads, for tests.

A `LocalHttpServer` replies from a route table (path -> `Reply`), records
every request it receives (method, target and headers) and listens on a
random port of 127.0.0.1 or another loopback address such as 127.0.0.2.
`self_signed_cert` makes a certificate for HTTPS servers at test time.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit


@dataclass
class Reply:
    """What a route sends back.

    With `trickle_s` set, the body (and, with `trickle_headers`, the status
    line and headers too) is sent one byte at a time with that pause between bytes.
    With `chunked`, the body goes out with Transfer-Encoding: chunked, one chunk per 1000 bytes.
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    trickle_s: float | None = None
    trickle_headers: bool = False
    chunked: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it; header names are lower-cased."""

    method: str
    target: str
    headers: dict[str, str]

    @property
    def path(self) -> str:
        return urlsplit(self.target).path


Route = Reply | Callable[[RecordedRequest], Reply]


@dataclass(frozen=True)
class TlsFiles:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


def self_signed_cert(directory: Path, host: str = "127.0.0.1") -> TlsFiles:
    """Write a one-day self-signed certificate for `host` (an IP address) into directory.

    Uses the `cryptography` package when it is installed, else the openssl
    command. Raises RuntimeError when neither is available, so callers can skip.
    """
    files = TlsFiles(directory / "cert.pem", directory / "key.pem")
    try:
        _cert_with_cryptography(files, host)
        return files
    except ImportError:
        pass
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("neither the cryptography package nor the openssl command is available")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(files.key), "-out", str(files.cert),
         "-subj", f"/CN={host}", "-addext", f"subjectAltName=IP:{host}"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return files


def _cert_with_cryptography(files: TlsFiles, host: str) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer()

    def do_HEAD(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep pytest output clean

    def _answer(self) -> None:
        request = RecordedRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        owner = self.server.owner
        with owner.lock:
            owner.requests.append(request)
        route = owner.routes.get(request.path, Reply(404, b"not found\n"))
        reply = route(request) if callable(route) else route
        try:
            self._send(reply)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the client went away, which the deadline tests cause on purpose
        self.close_connection = True

    def _send(self, reply: Reply) -> None:
        headers = {"Connection": "close", **reply.headers}
        if reply.chunked:
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Content-Length"] = str(len(reply.body))
        head = f"HTTP/1.1 {reply.status} {self.responses.get(reply.status, ('',))[0]}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
        if reply.trickle_s is not None and reply.trickle_headers:
            self._trickle(head.encode("latin-1"), reply.trickle_s)
        else:
            self.wfile.write(head.encode("latin-1"))
            self.wfile.flush()
        if self.command == "HEAD":
            return
        body = reply.body
        if reply.chunked:
            pieces = [body[i : i + 1000] for i in range(0, len(body), 1000)] + [b""]
            body = b"".join(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for piece in pieces)
        if reply.trickle_s is not None:
            self._trickle(body, reply.trickle_s)
        else:
            self.wfile.write(body)
            self.wfile.flush()

    def _trickle(self, data: bytes, pause_s: float) -> None:
        for index in range(len(data)):
            if self.server.owner.stopping.is_set():
                return
            self.wfile.write(data[index : index + 1])
            self.wfile.flush()
            time.sleep(pause_s)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: "LocalHttpServer"

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # failed TLS handshakes and dropped clients are expected in these tests


class LocalHttpServer:
    """A threaded HTTP(S) server on a loopback address; a context manager that starts and stops it."""

    def __init__(self, host: str = "127.0.0.1", *, tls: TlsFiles | None = None) -> None:
        self.host = host
        self.tls = tls
        self.routes: dict[str, Route] = {}
        self.requests: list[RecordedRequest] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def url(self, target: str = "/") -> str:
        """Return the absolute URL of a path (with its query) on this server."""
        return f"{self.scheme}://{self.host}:{self.port}{target}"

    def route(self, path: str, reply: Route) -> None:
        self.routes[path] = reply

    def start(self) -> "LocalHttpServer":
        server = _Server((self.host, 0), _Handler)
        server.owner = self
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.tls.cert, self.tls.key)
            # The handshake then runs in the handler thread, so a client that rejects
            # the certificate cannot stall the accept loop.
            server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "LocalHttpServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
