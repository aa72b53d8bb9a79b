"""URL allowlist matching: each URL component is compared on its own, and tricky URLs are rejected."""

from __future__ import annotations

import string

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from urllib3.util import parse_url

from glpibot.actions.url_policy import (
    parse_pattern,
    parse_url as parse_request_url,
    pattern_problem,
    url_allowed,
    url_problem,
)

LOCAL = ["http://127.0.0.1:*/*"]
HOME = ["https://*.home.arpa/*"]

# (url, patterns, allowed)
CASES = [
    # plain matches
    ("http://127.0.0.1:8080/health", LOCAL, True),
    ("http://127.0.0.1/health", LOCAL, True),
    ("http://127.0.0.1", LOCAL, True),
    ("https://grafana.home.arpa/api/health", HOME, True),
    ("https://a-b_c.home.arpa/", HOME, True),
    # the host glob stays inside the host
    ("https://evil.test/x.home.arpa/y", HOME, False),
    ("https://evil.test/?x=.home.arpa", HOME, False),
    ("https://home.arpa/", HOME, False),
    ("https://a.b.home.arpa/", HOME, False),
    ("https://a.b.home.arpa/", ["https://**.home.arpa/*"], True),
    ("https://home.arpa.evil.test/", HOME, False),
    ("http://10.0.0.1.evil.test/", ["http://10.0.0.*/*"], False),
    ("http://10.0.0.7/", ["http://10.0.0.*/*"], True),
    # user info is rejected outright
    ("https://a.home.arpa@evil.test/", HOME, False),
    ("https://user:pass@grafana.home.arpa/", HOME, False),
    ("http://127.0.0.1:8080@evil.test/", LOCAL, False),
    ("http://evil.test@127.0.0.1/", LOCAL, False),
    ("http://@127.0.0.1/", LOCAL, False),
    # other schemes and scheme case
    ("ftp://127.0.0.1/", LOCAL, False),
    ("file:///etc/passwd", LOCAL, False),
    ("https://127.0.0.1/", LOCAL, False),
    ("http://127.0.0.1/", ["https://127.0.0.1:*/*"], False),
    ("HTTP://127.0.0.1/x", LOCAL, True),
    ("http://127.0.0.1/x", ["HTTP://127.0.0.1:*/*"], True),
    ("http:/127.0.0.1/", LOCAL, False),
    ("//127.0.0.1/", LOCAL, False),
    # ports
    ("http://127.0.0.1/", ["http://127.0.0.1/*"], True),
    ("http://127.0.0.1:80/", ["http://127.0.0.1/*"], True),
    ("http://127.0.0.1:8080/", ["http://127.0.0.1/*"], False),
    ("https://grafana.home.arpa:8443/", HOME, False),
    ("https://grafana.home.arpa:443/", HOME, True),
    ("http://127.0.0.1:8080/", ["http://127.0.0.1:8080/*"], True),
    ("http://127.0.0.1:8081/", ["http://127.0.0.1:8080/*"], False),
    ("http://127.0.0.1:0/", LOCAL, False),
    ("http://127.0.0.1:99999/", LOCAL, False),
    ("http://127.0.0.1:80a/", LOCAL, False),
    ("http://127.0.0.1:-1/", LOCAL, False),
    ("http://127.0.0.1:/", LOCAL, False),
    # IPv6 literals
    ("http://[::1]:8080/", ["http://[::1]:*/*"], True),
    ("http://[0:0:0:0:0:0:0:1]/", ["http://[::1]/*"], True),
    ("http://[::1]/", LOCAL, False),
    ("http://[::1]/", ["http://*:*/*"], False),
    ("http://[::1/", ["http://[::1]:*/*"], False),
    ("http://[fe80::1%25eth0]/", ["http://[fe80::1]:*/*"], False),
    ("http://::1/", ["http://[::1]:*/*"], False),
    # trailing dots are part of the name
    ("https://example.test./", ["https://example.test/*"], False),
    ("https://example.test./", ["https://example.test./*"], True),
    ("https://example.test/", ["https://example.test./*"], False),
    # host case
    ("https://GRAFANA.Home.Arpa/", HOME, True),
    ("https://grafana.home.arpa/", ["https://GRAFANA.home.arpa/*"], True),
    # backslashes, spaces and control characters
    ("http://127.0.0.1\\@evil.test/", LOCAL, False),
    ("http://evil.test\\.127.0.0.1/", LOCAL, False),
    ("http://127.0.0.1/a\\b", LOCAL, False),
    ("http://127.0.0.1/a b", LOCAL, False),
    ("http://127.0.0.1/\tx", LOCAL, False),
    ("http://127.0.0.1\n.evil.test/", LOCAL, False),
    (" http://127.0.0.1/", LOCAL, False),
    ("http://127.0.0.1/caf\u00e9", LOCAL, False),
    ("http://gr\u0430fana.home.arpa/", ["http://*.home.arpa/*"], False),
    # fragments never reach the server and are ignored
    ("http://127.0.0.1/#@evil.test/", LOCAL, True),
    ("http://127.0.0.1#@evil.test/", LOCAL, True),
    ("http://evil.test#@127.0.0.1/", LOCAL, False),
    ("http://evil.test?@127.0.0.1/", LOCAL, False),
    ("http://127.0.0.1/health#x", ["http://127.0.0.1/health"], True),
    # encoded characters are compared as written
    ("http://127.0.0.%31/", LOCAL, False),
    ("http://127.0.0.1%2f@evil.test/", LOCAL, False),
    ("http://127.0.0.1/heal%74h", ["http://127.0.0.1/health"], False),
    ("http://127.0.0.1/a%2Fb", ["http://127.0.0.1/a/*"], False),
    ("http://127.0.0.1/a/%2e%2e/admin", ["http://127.0.0.1/a/*"], False),
    # `@` in the path or query is harmless
    ("http://127.0.0.1/@evil.test", LOCAL, True),
    ("http://127.0.0.1/x?next=@evil.test", LOCAL, True),
    # path globs and queries
    ("http://127.0.0.1/health", ["http://127.0.0.1/health"], True),
    ("http://127.0.0.1/health/x", ["http://127.0.0.1/health"], False),
    ("http://127.0.0.1/health?full=1", ["http://127.0.0.1/health"], False),
    ("http://127.0.0.1/health?full=1", ["http://127.0.0.1/health?*"], True),
    ("http://127.0.0.1/api/v1/status", ["http://127.0.0.1/api/*"], True),
    ("http://127.0.0.1/api", ["http://127.0.0.1/api/*"], False),
    ("http://127.0.0.1/", ["http://127.0.0.1/"], True),
    ("http://127.0.0.1", ["http://127.0.0.1/"], True),
    ("http://127.0.0.1/x", ["http://127.0.0.1/"], False),
    ("http://127.0.0.1/API/x", ["http://127.0.0.1/api/*"], False),
    # dot segments would be removed by requests before sending
    ("http://127.0.0.1/api/../admin", ["http://127.0.0.1/api/*"], False),
    ("http://127.0.0.1/api/./x", LOCAL, False),
    # several patterns, empty lists and invalid patterns
    ("http://127.0.0.1/", HOME + LOCAL, True),
    ("http://127.0.0.1/", [], False),
    ("http://127.0.0.1/", ["*"], False),
    ("http://127.0.0.1/", ["127.0.0.1"], False),
    ("http://127.0.0.1/", ["http://user@127.0.0.1/*"], False),
]


@pytest.mark.parametrize(("url", "patterns", "allowed"), CASES)
def test_url_allowed_table(url: str, patterns: list[str], allowed: bool) -> None:
    assert url_allowed(url, patterns) is allowed


def test_fnmatch_pitfalls_rejected() -> None:
    assert not url_allowed("https://evil.test/x.home.arpa/y", HOME)
    assert not url_allowed("https://a.home.arpa@evil.test/", HOME)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://a@b.test/", "contains user info (user:password@), which is not allowed"),
        ("ftp://b.test/", "must start with http:// or https://"),
        ("http://b.test/a b", "contains a space; percent-encode it as %20"),
        ("http://b.test\\x/", "contains a backslash"),
        ("http://b.test:99999/", "has an invalid port '99999'; use a number from 1 to 65535"),
        ("http://127.0.0.%31/", "has an invalid host '127.0.0.%31'; use a DNS name or an IP address without encoding"),
        ("http://b.test/a/../b", "has a '.' or '..' path segment; write the path without them"),
        ("http:///x", "has no host"),
    ],
)
def test_url_problem_reasons(url: str, reason: str) -> None:
    assert url_problem(url) == reason


def test_url_problem_none_for_good_url() -> None:
    assert url_problem("https://grafana.home.arpa:8443/api?x=1") is None


def test_parse_url_components() -> None:
    parts = parse_request_url("HTTPS://Grafana.Home.Arpa/api?x=1#frag")
    assert parts.scheme == "https"
    assert parts.host == "grafana.home.arpa"
    assert parts.port == 443
    assert parts.target == "/api?x=1"


def test_parse_url_ipv6_compressed() -> None:
    parts = parse_request_url("http://[0:0:0:0:0:0:0:1]:8080")
    assert parts.host == "[::1]"
    assert parts.port == 8080
    assert parts.target == "/"


@pytest.mark.parametrize(
    "pattern",
    ["127.0.0.1", "ftp://x/*", "http://u@x/*", "http://x/#a", "http://x:99999/*", "http://[::1/*", "http:// x/*", ""],
)
def test_pattern_problem_reported(pattern: str) -> None:
    assert pattern_problem(pattern) is not None


def test_pattern_problem_none_for_good_pattern() -> None:
    assert pattern_problem("https://*.home.arpa:*/api/*") is None


def test_pattern_without_path_means_everything() -> None:
    assert parse_pattern("http://127.0.0.1:8080").target.pattern == "/.*"


_URL_CHARS = string.ascii_letters[:6] + string.digits[:3] + ".:/@?#%[]\\-_ *"


@settings(max_examples=400, deadline=None)
@given(tail=st.text(alphabet=_URL_CHARS, max_size=20), head=st.sampled_from(["http://", "http://127.0.0.1", ""]))
def test_allowed_urls_reach_only_allowed_host(head: str, tail: str) -> None:
    # Whatever the text, a URL that the policy allows is one that requests and
    # urllib3 send to 127.0.0.1, so the checker and the sender agree on the host.
    url = head + tail
    if not url_allowed(url, LOCAL):
        return
    prepared = requests.Request("GET", url).prepare()
    parsed = parse_url(prepared.url or "")
    assert parsed.scheme == "http"
    assert parsed.host == "127.0.0.1"
    assert parsed.auth is None
