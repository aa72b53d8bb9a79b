"""The http_check action: request an allowlisted URL from the runner and check the response.

Safety rules, each enforced here and covered by tests:

- The URL, and every redirect target, must match
  `actions.http_check.allowed_urls` (see url_policy); an empty list allows
  nothing. A redirect is followed only with `follow_redirects: true`, at most
  `max_redirects` times, never from https to http, and a refused target gets
  no request at all.
- `timeout_s` bounds the whole check (connect, TLS, headers, body and every
  redirect hop). A timer shuts down the check's sockets at the deadline, so a
  server that trickles bytes cannot hold the check longer.
- No cookie is kept, no Authorization header is sent, and the environment
  (HTTP_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE, .netrc) is ignored.
- The body is read up to `max_body_bytes`; the first 64 KiB become the step
  output, which stays untrusted text that renderers escape.
- A HEAD step with `expect_body_contains` is rejected by check_policy,
  because a HEAD response has no body; run() fails such a step the same way.
"""

from __future__ import annotations

import codecs
import logging
import socket
import ssl
import time
import warnings
from email.message import Message
from http.client import HTTPException
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from glpibot.actions.base import Action, ActionContext, StepResult
from glpibot.actions.http_session import Deadline, new_session
from glpibot.actions.url_policy import url_allowed, url_problem
from glpibot.errors import SpecIssue

if TYPE_CHECKING:
    from glpibot.config import Config
    from glpibot.spec.model import Step

logger = logging.getLogger(__name__)

ALLOWLIST_KEY = "actions.http_check.allowed_urls"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_REDIRECTS = 5
OUTPUT_BYTES = 64 * 1024  # body bytes kept as step output
READ_CHUNK_BYTES = 16 * 1024
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
REQUEST_HEADERS = {
    "User-Agent": "glpibot-http-check",
    "Accept": "*/*",
    # Identity keeps max_body_bytes a count of bytes on the wire and avoids decompression bombs.
    "Accept-Encoding": "identity",
}
HEAD_BODY_MESSAGE = "expect_body_contains needs a response body, but a HEAD response has none; use method GET"


class _StepFailed(Exception):
    """Ends a check early with a one-line summary."""


def _one_line(text: str, limit: int = 300) -> str:
    """Return text with control characters escaped, cut to `limit` characters, for summaries."""
    shown = "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
    return shown if len(shown) <= limit else shown[:limit] + "..."


def _charset(content_type: str | None) -> str:
    """Return the charset named in a Content-Type header, or utf-8 when it names none we know."""
    message = Message()
    message["content-type"] = content_type or "application/octet-stream"
    charset = message.get_content_charset() or "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:
        return "utf-8"
    return charset


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """List exc and the exceptions it wraps (requests and urllib3 nest them several levels deep)."""
    chain: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending and len(chain) < 20:
        current = pending.pop(0)
        if current in chain:
            continue
        chain.append(current)
        reason = getattr(current, "reason", None)
        nested = [reason, current.__cause__, current.__context__, *current.args]
        pending.extend(item for item in nested if isinstance(item, BaseException))
    return chain


def _failure_summary(exc: BaseException, url: str) -> str:
    chain = _exception_chain(exc)
    text = " ".join(str(item) for item in chain)
    if any(isinstance(item, ssl.SSLCertVerificationError) for item in chain) or "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            f"TLS certificate verification failed for {url} "
            "(set verify_tls: false only for self-signed test hosts)"
        )
    if any(isinstance(item, ConnectionRefusedError) for item in chain):
        return f"connection refused: {url}"
    if any(isinstance(item, socket.gaierror) for item in chain):
        return f"host name not found: {url}"
    if any(isinstance(item, (ssl.SSLError, requests.exceptions.SSLError)) for item in chain):
        return f"TLS handshake failed for {url}: {_one_line(str(chain[-1]), 120)}"
    innermost = chain[-1]
    return f"request to {url} failed: {type(innermost).__name__}: {_one_line(str(innermost), 120)}"


class _Check:
    """One run of one http_check step, with the facts collected so far."""

    def __init__(self, step: "Step", context: ActionContext) -> None:
        params = step.params
        settings = context.config.action_settings("http_check")
        self.context = context

        self.url: str = params["url"]
        self.method: str = params.get("method", "GET")
        expected = params.get("expect_status", 200)
        self.expected: list[int] = [expected] if isinstance(expected, int) else list(expected)
        self.needle: str | None = params.get("expect_body_contains")
        self.verify: bool = params.get("verify_tls", True)
        self.follow: bool = params.get("follow_redirects", False)

        self.patterns: list[str] = list(settings.get("allowed_urls") or [])
        self.max_body: int = int(settings.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES))
        self.max_redirects: int = int(settings.get("max_redirects", DEFAULT_MAX_REDIRECTS))
        self.deadline = Deadline(context.remaining_s(float(params.get("timeout_s", DEFAULT_TIMEOUT_S))))

        self.started = time.monotonic()
        self.body = bytearray()
        self.charset = "utf-8"  # of the last response, from its Content-Type header
        self.facts: dict[str, Any] = {
            "url": self.url,
            "method": self.method,
            "status": None,
            "first_status": None,
            "final_url": self.url,
            "redirects": [],
            "elapsed_ms": 0,
            "body_bytes": 0,
            "body_truncated": False,
            "expected_status": self.expected,
            "follow_redirects": self.follow,
        }

    def run(self) -> StepResult:
        if self.method == "HEAD" and self.needle is not None:
            return self._result(False, HEAD_BODY_MESSAGE)
        rejection = url_rejection(self.url, self.patterns)
        if rejection:
            return self._result(False, rejection, config_problem=True)
        if self.deadline.passed():
            return self._result(False, f"timed out after {self.deadline.seconds:.1f} s", timed_out=True)
        session = new_session(self.deadline)
        self.deadline.start()
        try:
            with warnings.catch_warnings():
                # verify_tls: false is the spec author's explicit choice; the warning would repeat on every pass.
                warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
                return self._exchange(session)
        except _StepFailed as failure:
            return self._result(False, str(failure))
        except (requests.RequestException, urllib3.exceptions.HTTPError, HTTPException, OSError) as exc:
            if self.deadline.passed() or isinstance(exc, requests.Timeout):
                return self._result(False, f"timed out after {self.deadline.seconds:.1f} s", timed_out=True)
            current = self.facts["final_url"]
            logger.debug("ticket %s: http_check %s failed: %r", self.context.ticket_id, current, exc)
            return self._result(False, _failure_summary(exc, current))
        finally:
            self.deadline.cancel()
            session.close()

    def _exchange(self, session: requests.Session) -> StepResult:
        current = self.url
        while True:
            self.facts["final_url"] = current
            response = self._send(session, current)
            status = response.status_code
            if self.facts["first_status"] is None:
                self.facts["first_status"] = status
            self.facts["status"] = status
            self.charset = _charset(response.headers.get("Content-Type"))
            location = response.headers.get("Location")
            if self.follow and status in REDIRECT_STATUSES and location is not None:
                response.close()
                current = self._next_hop(current, status, location)
                continue
            if self.method != "HEAD":
                self._read_body(response)
            response.close()
            return self._judge(response, location)

    def _send(self, session: requests.Session, url: str) -> requests.Response:
        remaining = self.deadline.remaining()
        if remaining <= 0:
            raise TimeoutError("deadline passed before the request")
        prepared = requests.Request(self.method, url, headers=REQUEST_HEADERS).prepare()
        # requests may re-quote the URL; the form that is sent must pass the allowlist too.
        if not url_allowed(prepared.url or "", self.patterns):
            raise _StepFailed(f"url {_one_line(prepared.url or url)} is not allowed by {ALLOWLIST_KEY}")
        return session.send(
            prepared, allow_redirects=False, stream=True, timeout=(remaining, remaining), verify=self.verify, proxies={}
        )

    def _next_hop(self, current: str, status: int, location: str) -> str:
        """Return the redirect target when it may be followed; raise _StepFailed naming it otherwise."""
        target = urljoin(current, location)
        redirects: list[dict[str, Any]] = self.facts["redirects"]
        hop = {"status": status, "location": location, "url": target, "followed": False}
        redirects.append(hop)
        target_text = _one_line(target)
        if len(redirects) > self.max_redirects:
            raise _StepFailed(f"too many redirects ({self.max_redirects})")
        if urlsplit(current).scheme.lower() == "https" and urlsplit(target).scheme.lower() != "https":
            raise _StepFailed(f"redirect to {target_text} not followed: it leaves https for plain http")
        if not url_allowed(target, self.patterns):
            raise _StepFailed(f"redirect to {target_text} not followed: outside {ALLOWLIST_KEY}")
        hop["followed"] = True
        return target

    def _read_body(self, response: requests.Response) -> None:
        """Read at most max_body_bytes, one socket read at a time, checking the deadline between reads."""
        raw = response.raw
        while True:
            if self.deadline.passed():
                raise TimeoutError("deadline passed while reading the body")
            wanted = min(READ_CHUNK_BYTES, self.max_body + 1 - len(self.body))
            # read1 returns after one socket read, so a trickling server cannot make it wait for a full chunk.
            chunk = raw.read1(wanted, decode_content=True)
            if not chunk:
                return
            self.body += chunk
            if len(self.body) > self.max_body:
                del self.body[self.max_body :]
                self.facts["body_truncated"] = True
                return

    def _judge(self, response: requests.Response, location: str | None) -> StepResult:
        status = response.status_code
        text = bytes(self.body).decode(self.charset, errors="replace")
        redirect_count = sum(1 for hop in self.facts["redirects"] if hop["followed"])
        notes = []
        if redirect_count:
            notes.append(f"first response {self.facts['first_status']}, {redirect_count} redirect(s) followed")
        if status not in self.expected:
            if status in REDIRECT_STATUSES and location is not None:
                notes.append(f"redirect to {_one_line(location)}")
            if len(self.expected) == 1:
                expected_text = str(self.expected[0])
            else:
                expected_text = "one of " + ", ".join(map(str, self.expected))
            suffix = f" ({'; '.join(notes)})" if notes else ""
            return self._result(False, f"expected {expected_text}, got {status}{suffix}")
        if self.needle is not None and self.needle not in text:
            if self.facts["body_truncated"]:
                notes.append(f"only the first {self.max_body} bytes were read")
            suffix = f" ({'; '.join(notes)})" if notes else ""
            return self._result(False, f"body does not contain '{_one_line(self.needle)}'{suffix}")
        elapsed_ms = round((time.monotonic() - self.started) * 1000)
        suffix = f" ({'; '.join(notes)})" if notes else ""
        return self._result(True, f"{self.method} {_one_line(self.url)} answered {status} in {elapsed_ms} ms{suffix}")

    def _result(self, ok: bool, summary: str, *, timed_out: bool = False, config_problem: bool = False) -> StepResult:
        duration_s = time.monotonic() - self.started
        self.facts["elapsed_ms"] = round(duration_s * 1000)
        self.facts["body_bytes"] = len(self.body)
        head = bytes(self.body[:OUTPUT_BYTES])
        output = head.decode(self.charset, errors="replace")
        log = logger.info if ok else logger.warning
        log("ticket %s: http_check %s: %s", self.context.ticket_id, "ok" if ok else "failed", summary)
        return StepResult(
            ok=ok,
            summary=summary,
            facts=self.facts,
            output=output,
            duration_s=duration_s,
            config_problem=config_problem,
            timed_out=timed_out,
        )


def _spec_url_message(url: str) -> str | None:
    """Return the spec module's message for a malformed URL, when that module exists."""
    try:
        from glpibot.spec.validate import check_http_url
    except ImportError:
        return None
    return check_http_url(url)


def url_rejection(url: str, patterns: list[str]) -> str | None:
    """Return why the URL may not be requested under these patterns, or None when it may."""
    problem = url_problem(url)
    if problem:
        return f"url {_one_line(url)} is not allowed: it {problem}"
    if not url_allowed(url, patterns):
        return f"url {_one_line(url)} is not allowed by {ALLOWLIST_KEY}; add a matching pattern to allow it"
    return None


class HttpCheck(Action):
    """Request an allowlisted URL from the runner and check its status code and body text."""

    name = "http_check"
    description = "Request an allowlisted URL from the runner and check the status code and body text."
    runs_on = "runner"

    def changes_state(self, params: dict[str, Any]) -> bool:
        return False

    def check_policy(self, step: "Step", config: "Config") -> list[SpecIssue]:
        prefix = f"{step.path}." if step.path else ""
        params = step.params
        url = params.get("url")
        url_line = step.line_of("params.url")
        issues: list[SpecIssue] = []
        if not isinstance(url, str):
            issues.append(SpecIssue(f"{prefix}params.url", "missing required parameter `url` for http_check", url_line))
        else:
            patterns = list(config.action_settings(self.name).get("allowed_urls") or [])
            message = _spec_url_message(url) or url_rejection(url, patterns)
            if message:
                issues.append(SpecIssue(f"{prefix}params.url", message, url_line))
        if params.get("method", "GET") == "HEAD" and params.get("expect_body_contains") is not None:
            body_line = step.line_of("params.expect_body_contains")
            issues.append(SpecIssue(f"{prefix}params.expect_body_contains", HEAD_BODY_MESSAGE, body_line))
        return issues

    def run(self, step: "Step", context: ActionContext) -> StepResult:
        return _Check(step, context).run()
