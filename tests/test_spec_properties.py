"""Property tests: the spec pipeline raises SpecError and nothing else, whatever the input."""

from __future__ import annotations

from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glpibot.errors import SpecError
from glpibot.spec.extract import extract_spec_text, html_to_text
from glpibot.spec.validate import check_http_url, parse_spec, parse_ticket_body, validate_text
from glpibot.spec.yaml_loader import load_yaml

PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_HTML_PIECES = [
    "<p>", "</p>", "<br>", "<br/>", "<div>", "</div>", "<pre>", "</pre>", "<code>", "</code>",
    "<li>", "<ul>", "<h2>", "<tr><td>", "<script>", "</script>", "<style>", "</style>",
    "<!--", "-->", "<![CDATA[", "]]>", "<!DOCTYPE html>", "<![if x]>", "<?php", "<a href='x'>",
    "&nbsp;", "&amp;", "&lt;", "&gt;", "&#60;p&#62;", "&#60;/p&#62;", "&#38;nbsp;", "&#x3c;br&#x3e;",
    "&#", "&#99999999;", "&#xD800;", "&bogus;", "\u00a0", "\u202f", "\u2007", "\ufeff", "\r\n", "\r",
    "\t", "\n", " ", "  ", "```yaml", "```", "~~~glpibot", "~~~", "glpibot: 1", "glpibot:",
    "action: http_check", "action: systemd_remote", "steps:", "- action: http_check", "params:",
    "url: https://wiki.example.test/", "url: http://[fe80::1", "expect_status: 200",
    "expect_status: \"200\"", "host: no", "host: web", "reason: x", "&anchor", "*alias", "<<: ",
    "!!python/object:os.system", "!tag", "---", "...", "{", "}", "[", "]", ":", "- ", "'", '"',
    "\x00", "\x07", "\x85", "\u2028", "\ud800", "0o17", "0x1F", "1:30", "2024-06-01", ".inf",
    "9" * 40, "Thanks,", "alice",
]

html_ish = st.lists(st.sampled_from(_HTML_PIECES) | st.text(max_size=8), max_size=40).map("".join)
any_text = st.text(max_size=400)

PIPELINE: list[tuple[str, Callable[[str], object]]] = [
    ("html_to_text", html_to_text),
    ("extract_spec_text", extract_spec_text),
    ("parse_spec", parse_spec),
    ("parse_ticket_body", parse_ticket_body),
    ("load_yaml", load_yaml),
    ("validate_text", validate_text),
]


def _call(function: Callable[[str], object], text: str) -> None:
    try:
        function(text)
    except SpecError:
        pass


@pytest.mark.parametrize(("name", "function"), PIPELINE, ids=[name for name, _ in PIPELINE])
@PROPERTY_SETTINGS
@given(text=any_text)
def test_arbitrary_text_only_spec_error(name: str, function: Callable[[str], object], text: str) -> None:
    _call(function, text)


@pytest.mark.parametrize(("name", "function"), PIPELINE, ids=[name for name, _ in PIPELINE])
@PROPERTY_SETTINGS
@given(text=html_ish)
def test_html_ish_text_only_spec_error(name: str, function: Callable[[str], object], text: str) -> None:
    _call(function, text)


_URL_PIECES = [
    "http://", "https://", "HTTP://", "file://", "ftp:", "//", "/", "[", "]", "::1", "fe80::1", "%25eth0",
    ":", ":99999", ":0", ":8080", "@", "user:pw@", "wiki.example.test", "127.0.0.1", "999.1.1.1",
    "?a=1&b=2", "#frag", " ", "\t", "\\", "\u200b", "bücher", "..", "-", "_", "xn--", "9" * 30,
]
url_ish = st.lists(st.sampled_from(_URL_PIECES) | st.text(max_size=5), max_size=12).map("".join)


@PROPERTY_SETTINGS
@given(url=url_ish)
def test_url_check_returns_text_or_none(url: str) -> None:
    result = check_http_url(url)
    assert result is None or (isinstance(result, str) and "\n" not in result)


@PROPERTY_SETTINGS
@given(url=url_ish)
def test_accepted_urls_are_absolute_http(url: str) -> None:
    if check_http_url(url) is None:
        assert url.lower().startswith(("http://", "https://"))


yaml_scalars = st.sampled_from(
    ["yes", "no", "on", "off", "y", "n", "017", "0x1F", "0o17", "1_000", "1:30", "2024-06-01", ".inf", ".nan", "abc"]
)


@PROPERTY_SETTINGS
@given(word=yaml_scalars)
def test_yaml_11_words_stay_text(word: str) -> None:
    data, _ = load_yaml(f"value: {word}\n{word}: key\n")
    assert data["value"] == word
    assert data[word] == "key"
