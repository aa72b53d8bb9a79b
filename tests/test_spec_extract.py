"""Spec extraction: HTML ticket bodies to text, then the fenced block, `<pre>` block or `glpibot:` document."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
import yaml

from glpibot.errors import SpecError
from glpibot.spec.extract import (
    MAX_BODY_BYTES,
    MINIMAL_EXAMPLE,
    extract_spec_text,
    html_to_text,
    looks_like_html,
)
from glpibot.spec.validate import parse_spec, parse_ticket_body
from glpibot.spec.yaml_loader import MAX_YAML_BYTES

CASES = Path(__file__).parent / "data" / "cases"
WIKI_BODIES = ["wiki-check-ticket-plain.html", "wiki-check-ticket-pre.html", "wiki-check-ticket-legacy-encoded.html"]

SPEC_LINES = [
    "glpibot: 1",
    "action: systemd_remote",
    "host: svc-auto",
    "params:",
    "  unit: jellyfin.service",
    "  operation: restart",
]
SPEC_TEXT = "\n".join(SPEC_LINES)


def _spec_as_dict(body: str) -> dict[str, object]:
    """Return a parsed spec in the shape of the expected-spec JSON file."""
    spec = parse_ticket_body(body)
    result: dict[str, object] = {"glpibot": spec.version, "reason": spec.reason}
    result["steps"] = [{"action": step.action, "params": step.params} for step in spec.steps]
    return result


# --- the same spec in three GLPI body shapes ---------------------------------


@pytest.mark.parametrize("name", WIKI_BODIES)
def test_wiki_body_gives_expected_spec(name: str) -> None:
    expected = json.loads((CASES / "wiki-check-expected-spec.json").read_text(encoding="utf-8"))
    body = (CASES / name).read_text(encoding="utf-8")
    assert _spec_as_dict(body) == expected


@pytest.mark.parametrize("name", WIKI_BODIES)
def test_wiki_body_steps_have_no_host(name: str) -> None:
    spec = parse_ticket_body((CASES / name).read_text(encoding="utf-8"))
    assert [step.host for step in spec.steps] == [None]
    assert [step.path for step in spec.steps] == ["steps[0]"]


def test_nbsp_left_in_fools_pyyaml() -> None:
    # The fault this guards against: with U+00A0 kept, PyYAML returns a wrong mapping and no error.
    body = (CASES / "wiki-check-ticket-plain.html").read_text(encoding="utf-8")
    text_with_nbsp = extract_spec_text(body).replace("  ", "\u00a0 ")
    wrong = yaml.safe_load(text_with_nbsp)
    assert wrong["steps"] is None
    assert any(str(key).startswith("\u00a0") for key in wrong)


def test_nbsp_indentation_becomes_spaces() -> None:
    body = (CASES / "wiki-check-ticket-plain.html").read_text(encoding="utf-8")
    text = extract_spec_text(body)
    assert "\u00a0" not in text
    assert "\n  - action: http_check\n    params:\n      url: " in text


def test_legacy_body_decoded_one_level() -> None:
    body = (CASES / "wiki-check-ticket-legacy-encoded.html").read_text(encoding="utf-8")
    step = parse_ticket_body(body).steps[0]
    assert step.params["expect_body_contains"] == "db <ok>"
    assert step.params["url"] == "https://wiki.example.test/health?full=1&db=1"


def test_legacy_author_lt_stays_text() -> None:
    # The author typed `<b>` as text: the legacy body contains it as &#38;lt;b&#38;gt;.
    body = "&#60;p&#62;glpibot: 1&#60;br&#62;reason: keep &#38;lt;b&#38;gt; as text&#60;/p&#62;"
    assert html_to_text(body) == "glpibot: 1\nreason: keep <b> as text"


def test_legacy_body_with_named_entities() -> None:
    body = "&lt;p&gt;a &amp;amp; b&lt;br&gt;c&lt;/p&gt;"
    assert html_to_text(body) == "a & b\nc"


def test_body_encoded_twice_decoded_twice() -> None:
    body = "&#38;#60;p&#38;#62;x: 1&#38;#60;/p&#38;#62;"
    assert html_to_text(body) == "x: 1"


def test_real_html_not_decoded_again() -> None:
    assert html_to_text("<p>&amp;lt;p&amp;gt;</p>") == "&lt;p&gt;"


# --- html_to_text ------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>a</p><p>b</p>", "a\nb"),
        ("<p>a<br>b<br/>c</p>", "a\nb\nc"),
        ("<div>a</div><div>b</div>", "a\nb"),
        ("<ul><li>a</li><li>b</li></ul>", "a\nb"),
        ("<h2>Title</h2>text", "Title\ntext"),
        ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc"),
        ("<p>a &amp; b &lt;c&gt; &#65;&#x42;</p>", "a & b <c> AB"),
        ("<p>a&nbsp;b\u2007c\u202fd\u00a0e</p>", "a b c d e"),
        ("\ufeff<p>x</p>", "x"),
        ("<p>a</p>\r\n<p>b</p>\r<p>c</p>", "a\nb\nc"),
        ("<p>a</p><script>var x = '<p>hidden</p>';</script><style>p {}</style><p>b</p>", "a\nb"),
        ("<p>a</p><!-- note --><p>b</p>", "a\nb"),
        ("<P CLASS='x'>a<BR>b</P>", "a\nb"),
        ("<p>a</p><br><p>b</p>", "a\n\nb"),
        ("a <3 b", "a <3 b"),
    ],
)
def test_html_to_text_cases(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_pre_text_kept_verbatim() -> None:
    html = '<p>intro</p><pre class="language-yaml"><code>a:\n  b: "x &amp; y"\n    \n  c: 1</code></pre><p>end</p>'
    assert html_to_text(html) == 'intro\na:\n  b: "x & y"\n    \n  c: 1\nend'


def test_source_newlines_between_blocks() -> None:
    assert html_to_text("<p>a</p>\n\n<p>b</p>\n") == "a\nb"


def test_html_to_text_rejects_huge_body() -> None:
    with pytest.raises(SpecError) as raised:
        html_to_text("<p>" + "x" * MAX_BODY_BYTES + "</p>")
    assert "limit is 262144 bytes" in raised.value.issues[0].message


def test_looks_like_html_plain_yaml() -> None:
    assert not looks_like_html('glpibot: 1\nparams: {expect_body_contains: "<ok>"}\n')
    assert not looks_like_html('glpibot: 1\nparams: {expect_body_contains: "<b>ok</b>"}\n')
    assert looks_like_html("<p>glpibot: 1</p>")
    assert looks_like_html("&#60;p&#62;glpibot: 1&#60;/p&#62;")


# --- the shapes GLPI returns -------------------------------------------------


def test_one_paragraph_with_br_and_nbsp() -> None:
    body = "<p>" + "<br>".join(line.replace("  ", "&nbsp; ") for line in SPEC_LINES) + "</p>"
    assert extract_spec_text(body) == SPEC_TEXT


def test_pre_code_block() -> None:
    body = "<p>Please restart it.</p><pre><code>" + SPEC_TEXT + "\n</code></pre><p>Thanks,<br>alice</p>"
    assert extract_spec_text(body).rstrip("\n") == SPEC_TEXT


def test_one_paragraph_per_line() -> None:
    body = "".join(f"<p>{line.replace('  ', '&nbsp;&nbsp;')}</p>" for line in SPEC_LINES)
    assert extract_spec_text(body) == SPEC_TEXT


def test_greeting_and_signature_left_out() -> None:
    body = "<p>Hello bot,</p><p>" + "<br>".join(SPEC_LINES).replace("  ", "&nbsp; ") + "</p><p>Thanks,<br>alice</p>"
    assert extract_spec_text(body) == SPEC_TEXT


def test_signature_after_blank_line_left_out() -> None:
    body = "Hi,\n\n" + SPEC_TEXT + "\n\nThanks,\nalice\n"
    assert extract_spec_text(body) == SPEC_TEXT


def test_comment_inside_document_kept() -> None:
    text = "glpibot: 1\n# the media server\naction: systemd_remote\n\nhost: svc-auto\n"
    assert extract_spec_text(text) == text.rstrip("\n")


def test_div_based_body() -> None:
    body = "<div>Hello</div>" + "".join(f"<div>{line.replace(' ', '&nbsp;')}</div>" for line in SPEC_LINES)
    assert extract_spec_text(body) == SPEC_TEXT


def test_fence_inside_paragraph() -> None:
    body = "<p>Hello</p><p>```yaml<br>" + "<br>".join(SPEC_LINES).replace("  ", "&nbsp; ") + "<br>```</p><p>Bye</p>"
    assert extract_spec_text(body) == SPEC_TEXT


@pytest.mark.parametrize("opening", ["```yaml", "```glpibot", "~~~yaml", "```YAML", "````yaml"])
def test_fence_openings(opening: str) -> None:
    closing = opening.rstrip("yamlglpibotYAML")
    text = f"see below\n{opening}\n{SPEC_TEXT}\n{closing}\nbye"
    assert extract_spec_text(text) == SPEC_TEXT


def test_first_fence_wins() -> None:
    text = f"```yaml\n{SPEC_TEXT}\n```\n```yaml\nglpibot: 2\n```"
    assert extract_spec_text(text) == SPEC_TEXT


def test_fence_beats_pre_and_plain() -> None:
    body = "<pre>glpibot: 9</pre><p>glpibot: 8</p><p>```glpibot<br>" + "<br>".join(SPEC_LINES) + "<br>```</p>"
    assert extract_spec_text(body) == SPEC_TEXT


def test_pre_with_spec_beats_log_pre() -> None:
    body = "<pre>Jun 01 nginx[12]: error</pre><pre>" + SPEC_TEXT + "</pre>"
    assert extract_spec_text(body) == SPEC_TEXT


def test_unclosed_fence_stops_at_prose() -> None:
    text = f"```yaml\n{SPEC_TEXT}\nThanks,\nalice"
    assert extract_spec_text(text) == SPEC_TEXT


def test_plain_yaml_passes_through() -> None:
    text = 'glpibot: 1\naction: http_check\nparams:\n  url: "https://x.example.test/?a=1&amp;b"\n'
    assert extract_spec_text(text) == text.rstrip("\n")


def test_plain_text_crlf_normalized() -> None:
    assert extract_spec_text(SPEC_TEXT.replace("\n", "\r\n")) == SPEC_TEXT


def test_indented_spec_dedented() -> None:
    body = "<p>" + "<br>".join("&nbsp;&nbsp;" + line for line in SPEC_LINES) + "</p>"
    assert extract_spec_text(body) == SPEC_TEXT


# --- nothing found, or too large ---------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "",
        "<p>Please restart the media server.</p><p>Thanks,<br>alice</p>",
        "<p>```yaml<br>```</p>",
        "<pre>   </pre>",
        "<script>glpibot: 1</script>",
    ],
)
def test_no_spec_is_missing(body: str) -> None:
    with pytest.raises(SpecError) as raised:
        extract_spec_text(body)
    assert raised.value.kind == "missing"
    assert len(raised.value.issues) == 1


def test_missing_message_shows_example() -> None:
    with pytest.raises(SpecError) as raised:
        parse_ticket_body("<p>Hello, please fix the wiki.</p>")
    message = raised.value.issues[0].message
    assert message.startswith("no spec found: no YAML block was found")
    assert MINIMAL_EXAMPLE in message
    assert raised.value.issues[0].path == ""


def test_minimal_example_is_valid() -> None:
    spec = parse_ticket_body(MINIMAL_EXAMPLE)
    assert [step.action for step in spec.steps] == ["http_check"]


def test_body_over_limit_rejected() -> None:
    body = "<p>" + SPEC_TEXT + "</p>" + "<p>filler</p>" * (MAX_BODY_BYTES // 13 + 1)
    with pytest.raises(SpecError) as raised:
        extract_spec_text(body)
    message = raised.value.issues[0].message
    assert raised.value.kind == "invalid"
    assert f"the limit is {MAX_BODY_BYTES} bytes" in message
    assert f"is {len(body.encode())} bytes" in message


def test_yaml_over_limit_rejected() -> None:
    text = "glpibot: 1\nreason: |\n" + "  filler line\n" * (MAX_YAML_BYTES // 14 + 1)
    with pytest.raises(SpecError) as raised:
        extract_spec_text(text)
    assert f"the limit is {MAX_YAML_BYTES} bytes" in raised.value.issues[0].message


@pytest.mark.parametrize("piece", ["<a b='", "<p a", "</a", "<!--", "<a", "<?"])
def test_malformed_markup_finishes(piece: str) -> None:
    # html.parser alone rescans the body for each unclosed tag: minutes at this size.
    body = ("<p>x</p>" + piece * (MAX_BODY_BYTES // len(piece)))[:MAX_BODY_BYTES]
    started = time.monotonic()
    with pytest.raises(SpecError):
        extract_spec_text(body)
    assert time.monotonic() - started < 30


def test_body_must_be_text() -> None:
    with pytest.raises(SpecError) as raised:
        extract_spec_text(b"glpibot: 1")  # type: ignore[arg-type]
    assert "must be text" in raised.value.issues[0].message


def test_parse_ticket_body_single_action() -> None:
    spec = parse_ticket_body("<p>" + "<br>".join(SPEC_LINES).replace("  ", "&nbsp; ") + "</p>")
    assert dataclasses.asdict(spec.steps[0]) == {
        "index": 0,
        "action": "systemd_remote",
        "params": {"unit": "jellyfin.service", "operation": "restart"},
        "host": "svc-auto",
        "path": "",
        "line": 2,
        "lines": {"action": 2, "host": 3, "params": 4, "params.unit": 5, "params.operation": 6},
    }
    assert parse_spec(SPEC_TEXT).steps == spec.steps
