"""http_check against real HTTP and HTTPS servers on loopback addresses.

127.0.0.1 plays the host named in the spec; 127.0.0.2 (also loopback) plays
"another host" that the allowlist does not contain. An autouse guard makes
any connection attempt to a non-loopback address fail the test.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from glpibot.actions import get_action
from glpibot.actions.base import ActionContext, StepResult
from glpibot.actions.http_check import HttpCheck
from glpibot.config import Config, config_from_dict
from glpibot.spec.model import Step
from tests.httpservers import LocalHttpServer, RecordedRequest, Reply, TlsFiles, self_signed_cert

DATA = Path(__file__).parent / "data" / "cases"
LOCAL_PATTERNS = ["http://127.0.0.1:*/*", "https://127.0.0.1:*/*"]
METADATA_URL = "http://169.254.169.254/latest/meta-data/"
ALLOWLIST_KEY = "actions.http_check.allowed_urls"
HANG_BOUND_S = 15.0  # generous: only detects a check that ignores its deadline


def make_config(patterns: list[str] | None = LOCAL_PATTERNS, **settings: Any) -> Config:
    section: dict[str, Any] = dict(settings)
    if patterns is not None:
        section["allowed_urls"] = patterns
    data: dict[str, Any] = {
        "glpi": {"url": "http://127.0.0.1:9", "client_id": "bot", "username": "bot", "category": "Automation"},
        "actions": {"http_check": section},
    }
    return config_from_dict(data)


def make_step(path: str = "", line: int | None = 4, **params: Any) -> Step:
    return Step(index=0, action="http_check", params=params, path=path, line=line)


def run_check(config: Config | None = None, *, deadline: float | None = None, **params: Any) -> StepResult:
    context = ActionContext(config=config or make_config(), deadline=deadline, ticket_id=42)
    return HttpCheck().run(make_step(**params), context)


@pytest.fixture(autouse=True)
def loopback_guard(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record and block every connection attempt to an address outside 127.0.0.0/8 and ::1."""
    attempts: list[object] = []
    original = socket.socket.connect

    def guarded_connect(sock: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and not ipaddress.ip_address(address[0]).is_loopback:
            attempts.append(address)
            raise OSError(errno.ENETUNREACH, "blocked by the loopback guard of the test")
        original(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    return attempts


@pytest.fixture
def server() -> Iterator[LocalHttpServer]:
    with LocalHttpServer("127.0.0.1") as running:
        yield running


@pytest.fixture
def other_host() -> Iterator[LocalHttpServer]:
    with LocalHttpServer("127.0.0.2") as running:
        running.route("/health", Reply(200, b'{"status":"ok"}'))
        yield running


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    try:
        return self_signed_cert(tmp_path_factory.mktemp("tls"))
    except RuntimeError as exc:
        pytest.skip(f"cannot make a test certificate: {exc}")


@pytest.fixture
def tls_server(tls_files: TlsFiles) -> Iterator[LocalHttpServer]:
    with LocalHttpServer("127.0.0.1", tls=tls_files) as running:
        yield running


def health_params(server: LocalHttpServer) -> dict[str, Any]:
    """Return the health-check spec's params with its URL moved to the local server."""
    spec = yaml.safe_load((DATA / "health-redirect-spec.yaml").read_text(encoding="utf-8"))
    params = dict(spec["params"])
    params["url"] = server.url(urlsplit(params["url"]).path)
    return params


def no_credentials_sent(requests_seen: list[RecordedRequest]) -> None:
    for request in requests_seen:
        assert "authorization" not in request.headers
        assert "cookie" not in request.headers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the action's identity and policy ---------------------------------------


def test_registry_returns_http_check() -> None:
    action = get_action("http_check")
    assert isinstance(action, HttpCheck)
    assert action.runs_on == "runner"
    assert action.changes_state({"url": "http://127.0.0.1/"}) is False
    assert "\n" not in action.description


def test_policy_allows_matching_url() -> None:
    issues = HttpCheck().check_policy(make_step(url="http://127.0.0.1:8080/health"), make_config())
    assert issues == []


def test_policy_rejects_unlisted_url() -> None:
    issues = HttpCheck().check_policy(make_step(url="http://x/"), make_config())
    assert len(issues) == 1
    assert issues[0].path == "params.url"
    assert issues[0].line == 4
    assert issues[0].message == (
        "url http://x/ is not allowed by actions.http_check.allowed_urls; add a matching pattern to allow it"
    )


def test_policy_path_of_later_step() -> None:
    issues = HttpCheck().check_policy(make_step(path="steps[1]", line=9, url="http://x/"), make_config())
    assert issues[0].path == "steps[1].params.url"
    assert issues[0].line == 9


def test_policy_empty_allowlist_rejects() -> None:
    issues = HttpCheck().check_policy(make_step(url="http://127.0.0.1/"), make_config([]))
    assert len(issues) == 1
    assert ALLOWLIST_KEY in issues[0].message


def test_policy_missing_allowlist_rejects() -> None:
    issues = HttpCheck().check_policy(make_step(url="http://127.0.0.1/"), make_config(None))
    assert len(issues) == 1
    assert ALLOWLIST_KEY in issues[0].message


def test_policy_rejects_user_info() -> None:
    issues = HttpCheck().check_policy(make_step(url="http://127.0.0.1:80@evil.test/"), make_config())
    assert len(issues) == 1
    assert issues[0].path == "params.url"
    assert "user" in issues[0].message


def test_policy_rejects_head_with_body_text() -> None:
    step = make_step(url="http://127.0.0.1/", method="HEAD", expect_body_contains="ok")
    issues = HttpCheck().check_policy(step, make_config())
    assert [issue.path for issue in issues] == ["params.expect_body_contains"]
    assert "HEAD" in issues[0].message


# --- redirects: login page, other host, metadata address, downgrade, loop ----


def test_redirect_to_login_fails(server: LocalHttpServer) -> None:
    server.route("/health", Reply(302, headers={"Location": "/login?next=%2Fhealth"}))
    server.route("/login", Reply(200, b"<form>login</form>"))
    result = run_check(**health_params(server))
    assert result.ok is False
    assert result.summary == "expected 200, got 302 (redirect to /login?next=%2Fhealth)"
    assert result.facts["first_status"] == 302
    assert result.facts["status"] == 302
    assert [request.path for request in server.requests] == ["/health"]


def test_redirect_followed_reports_first_status(server: LocalHttpServer) -> None:
    server.route("/health", Reply(302, headers={"Location": "/login?next=%2Fhealth"}))
    server.route("/login", Reply(200, b"<form>login</form>"))
    result = run_check(**health_params(server), follow_redirects=True)
    assert result.ok is True
    assert result.facts["first_status"] == 302
    assert result.facts["status"] == 200
    assert result.facts["final_url"] == server.url("/login?next=%2Fhealth")
    assert len(result.facts["redirects"]) == 1
    assert result.facts["redirects"][0]["followed"] is True
    assert "first response 302, 1 redirect(s) followed" in result.summary


@pytest.mark.parametrize("follow", [False, True])
def test_redirect_to_other_host_not_followed(
    server: LocalHttpServer, other_host: LocalHttpServer, follow: bool
) -> None:
    target = other_host.url("/health")
    server.route("/health", Reply(301, headers={"Location": target}))
    result = run_check(make_config(["http://127.0.0.1:*/*"]), **health_params(server), follow_redirects=follow)
    assert result.ok is False
    if follow:
        assert result.summary == f"redirect to {target} not followed: outside {ALLOWLIST_KEY}"
    else:
        assert result.summary == f"expected 200, got 301 (redirect to {target})"
    assert result.facts["first_status"] == 301
    assert other_host.requests == []
    assert len(server.requests) == 1


def test_redirect_to_metadata_never_requested(server: LocalHttpServer, loopback_guard: list[object]) -> None:
    server.route("/health", Reply(302, headers={"Location": METADATA_URL}))
    result = run_check(**health_params(server), follow_redirects=True)
    assert result.ok is False
    assert result.summary == f"redirect to {METADATA_URL} not followed: outside {ALLOWLIST_KEY}"
    assert result.facts["redirects"][0]["url"] == METADATA_URL
    assert result.facts["redirects"][0]["followed"] is False
    assert loopback_guard == []


def test_redirect_https_to_http_refused(tls_server: LocalHttpServer, server: LocalHttpServer) -> None:
    target = server.url("/health")
    tls_server.route("/health", Reply(308, headers={"Location": target}))
    server.route("/health", Reply(200, b"ok"))
    result = run_check(url=tls_server.url("/health"), verify_tls=False, follow_redirects=True)
    assert result.ok is False
    assert result.summary == f"redirect to {target} not followed: it leaves https for plain http"
    assert result.facts["first_status"] == 308
    assert server.requests == []


def test_redirect_loop_stops(server: LocalHttpServer) -> None:
    server.route("/health", Reply(302, headers={"Location": "/health"}))
    result = run_check(**health_params(server), follow_redirects=True)
    assert result.ok is False
    assert result.summary == "too many redirects (5)"
    assert len(server.requests) == 6


def test_redirect_loop_respects_setting(server: LocalHttpServer) -> None:
    server.route("/health", Reply(302, headers={"Location": "/health"}))
    result = run_check(make_config(max_redirects=2), **health_params(server), follow_redirects=True)
    assert result.summary == "too many redirects (2)"
    assert len(server.requests) == 3


def test_redirect_loop_without_follow(server: LocalHttpServer) -> None:
    server.route("/health", Reply(302, headers={"Location": "/health"}))
    result = run_check(**health_params(server))
    assert result.summary == "expected 200, got 302 (redirect to /health)"
    assert len(server.requests) == 1


def test_plain_200_passes(server: LocalHttpServer) -> None:
    server.route("/health", Reply(200, b'{"status":"ok"}', {"Content-Type": "application/json"}))
    result = run_check(**health_params(server))
    assert result.ok is True
    assert result.summary.startswith(f"GET {server.url('/health')} answered 200 in ")
    assert result.summary.endswith(" ms")
    assert result.output == '{"status":"ok"}'
    assert result.facts["first_status"] == 200
    assert result.facts["redirects"] == []
    assert result.facts["body_bytes"] == 15
    assert result.timed_out is False


# --- no credentials, cookies or proxies --------------------------------------


def test_cookie_not_sent_after_redirect(server: LocalHttpServer) -> None:
    server.route("/start", Reply(302, headers={"Location": "/next", "Set-Cookie": "session=abc123; Path=/"}))
    server.route("/next", Reply(200, b"ok"))
    result = run_check(url=server.url("/start"), follow_redirects=True)
    assert result.ok is True
    assert [request.path for request in server.requests] == ["/start", "/next"]
    assert "cookie" not in server.requests[1].headers
    no_credentials_sent(server.requests)


def test_netrc_and_proxy_env_ignored(
    server: LocalHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login admin password hunter22\n", encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    closed = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, closed)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    server.route("/health", Reply(200, b"ok"))
    result = run_check(url=server.url("/health"))
    assert result.ok is True
    assert len(server.requests) == 1
    no_credentials_sent(server.requests)


# --- status codes and body text -----------------------------------------------


def test_status_list_accepts_member(server: LocalHttpServer) -> None:
    server.route("/health", Reply(204))
    result = run_check(url=server.url("/health"), expect_status=[200, 204])
    assert result.ok is True
    assert result.facts["expected_status"] == [200, 204]


def test_status_list_rejects_other(server: LocalHttpServer) -> None:
    server.route("/health", Reply(503, b"down"))
    result = run_check(url=server.url("/health"), expect_status=[200, 204])
    assert result.ok is False
    assert result.summary == "expected one of 200, 204, got 503"


def test_expected_non_200_status(server: LocalHttpServer) -> None:
    server.route("/gone", Reply(404, b"not here"))
    result = run_check(url=server.url("/gone"), expect_status=404)
    assert result.ok is True


def test_body_contains_passes(server: LocalHttpServer) -> None:
    server.route("/health", Reply(200, b"status: db <ok>\n", {"Content-Type": "text/plain; charset=utf-8"}))
    result = run_check(url=server.url("/health"), expect_body_contains="db <ok>")
    assert result.ok is True


def test_body_contains_fails(server: LocalHttpServer) -> None:
    server.route("/health", Reply(200, b"status: db down\n"))
    result = run_check(url=server.url("/health"), expect_body_contains="db <ok>")
    assert result.ok is False
    assert result.summary == "body does not contain 'db <ok>'"
    assert result.output == "status: db down\n"


def test_body_decoded_with_charset(server: LocalHttpServer) -> None:
    body = "caf\u00e9 ok".encode("latin-1")
    server.route("/health", Reply(200, body, {"Content-Type": "text/plain; charset=ISO-8859-1"}))
    result = run_check(url=server.url("/health"), expect_body_contains="caf\u00e9")
    assert result.ok is True
    assert result.output == "caf\u00e9 ok"


def test_invalid_bytes_replaced(server: LocalHttpServer) -> None:
    server.route("/health", Reply(200, b"ok \xff\xfe end", {"Content-Type": "text/plain; charset=utf-8"}))
    result = run_check(url=server.url("/health"), expect_body_contains="end")
    assert result.ok is True
    assert "\ufffd" in result.output


def test_body_capped(server: LocalHttpServer) -> None:
    server.route("/big", Reply(200, b"a" * 5000 + b"needle"))
    result = run_check(make_config(max_body_bytes=1024), url=server.url("/big"), expect_body_contains="needle")
    assert result.ok is False
    assert result.facts["body_bytes"] == 1024
    assert result.facts["body_truncated"] is True
    assert result.summary == "body does not contain 'needle' (only the first 1024 bytes were read)"
    assert len(result.output) == 1024


def test_chunked_body_capped(server: LocalHttpServer) -> None:
    server.route("/big", Reply(200, b"b" * 5000, chunked=True))
    result = run_check(make_config(max_body_bytes=2048), url=server.url("/big"))
    assert result.ok is True
    assert result.facts["body_bytes"] == 2048
    assert result.facts["body_truncated"] is True


def test_chunked_body_read_whole(server: LocalHttpServer) -> None:
    server.route("/page", Reply(200, b"c" * 4500 + b"tail", chunked=True))
    result = run_check(url=server.url("/page"), expect_body_contains="tail")
    assert result.ok is True
    assert result.facts["body_bytes"] == 4504
    assert result.facts["body_truncated"] is False


def test_output_keeps_first_64_kib(server: LocalHttpServer) -> None:
    server.route("/big", Reply(200, b"x" * 100_000))
    result = run_check(url=server.url("/big"))
    assert result.facts["body_bytes"] == 100_000
    assert result.facts["body_truncated"] is False
    assert len(result.output) == 64 * 1024


def test_error_page_kept_verbatim(server: LocalHttpServer) -> None:
    page = (DATA / "http-503-body.html").read_bytes()
    server.route("/", Reply(503, page, {"Content-Type": "text/html; charset=utf-8"}))
    result = run_check(url=server.url("/"), expect_status=200)
    assert result.ok is False
    assert result.summary == "expected 200, got 503"
    assert result.output == page.decode("utf-8")
    assert "<script>" in result.output


# --- HEAD -----------------------------------------------------------------------


def test_head_request(server: LocalHttpServer) -> None:
    server.route("/health", Reply(200, b"this body is not sent for HEAD"))
    result = run_check(url=server.url("/health"), method="HEAD")
    assert result.ok is True
    assert result.summary.startswith(f"HEAD {server.url('/health')} answered 200")
    assert result.facts["body_bytes"] == 0
    assert [request.method for request in server.requests] == ["HEAD"]


def test_head_with_body_text_fails(server: LocalHttpServer) -> None:
    result = run_check(url=server.url("/health"), method="HEAD", expect_body_contains="ok")
    assert result.ok is False
    assert "HEAD" in result.summary
    assert server.requests == []


# --- deadlines ----------------------------------------------------------------------


def test_trickling_body_times_out(server: LocalHttpServer) -> None:
    server.route("/slow", Reply(200, b"x" * 100, trickle_s=0.3))
    started = time.monotonic()
    result = run_check(url=server.url("/slow"), timeout_s=1)
    elapsed = time.monotonic() - started
    assert result.ok is False
    assert result.timed_out is True
    assert result.summary == "timed out after 1.0 s"
    assert result.facts["status"] == 200
    assert 0 < result.facts["body_bytes"] < 100
    assert elapsed < HANG_BOUND_S


def test_trickling_headers_time_out(server: LocalHttpServer) -> None:
    padding = {"X-Padding": "p" * 100}  # without the deadline timer this reply would take about 50 s
    server.route("/slow", Reply(200, b"ok", padding, trickle_s=0.3, trickle_headers=True))
    started = time.monotonic()
    result = run_check(url=server.url("/slow"), timeout_s=1)
    elapsed = time.monotonic() - started
    assert result.timed_out is True
    assert result.summary == "timed out after 1.0 s"
    assert result.facts["status"] is None
    assert elapsed < HANG_BOUND_S


def test_trickling_tls_body_times_out(tls_server: LocalHttpServer) -> None:
    tls_server.route("/slow", Reply(200, b"x" * 100, trickle_s=0.3))
    started = time.monotonic()
    result = run_check(url=tls_server.url("/slow"), verify_tls=False, timeout_s=1)
    elapsed = time.monotonic() - started
    assert result.timed_out is True
    assert result.summary == "timed out after 1.0 s"
    assert elapsed < HANG_BOUND_S


def test_context_deadline_shortens_timeout(server: LocalHttpServer) -> None:
    server.route("/slow", Reply(200, b"x" * 100, trickle_s=0.3))
    started = time.monotonic()
    result = run_check(url=server.url("/slow"), timeout_s=30, deadline=time.monotonic() + 0.6)
    elapsed = time.monotonic() - started
    assert result.timed_out is True
    assert result.summary == "timed out after 0.6 s"
    assert elapsed < HANG_BOUND_S


def test_passed_context_deadline_sends_nothing(server: LocalHttpServer) -> None:
    result = run_check(url=server.url("/health"), deadline=time.monotonic() - 1)
    assert result.timed_out is True
    assert server.requests == []


# --- network and TLS failures ----------------------------------------------------


def test_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    result = run_check(url=url)
    assert result.ok is False
    assert result.summary == f"connection refused: {url}"
    assert result.timed_out is False


def test_tls_verification_failure(tls_server: LocalHttpServer) -> None:
    tls_server.route("/health", Reply(200, b"ok"))
    url = tls_server.url("/health")
    result = run_check(url=url)
    assert result.ok is False
    assert result.summary == (
        f"TLS certificate verification failed for {url} (set verify_tls: false only for self-signed test hosts)"
    )
    assert tls_server.requests == []


def test_tls_without_verification(tls_server: LocalHttpServer) -> None:
    tls_server.route("/health", Reply(200, b"ok"))
    result = run_check(url=tls_server.url("/health"), verify_tls=False)
    assert result.ok is True
    no_credentials_sent(tls_server.requests)


def test_run_rejects_unlisted_url(other_host: LocalHttpServer) -> None:
    result = run_check(make_config(["http://127.0.0.1:*/*"]), url=other_host.url("/health"))
    assert result.ok is False
    assert result.config_problem is True
    assert ALLOWLIST_KEY in result.summary
    assert other_host.requests == []
