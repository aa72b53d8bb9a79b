"""Rendering of follow-ups, solutions and the Markdown artifact from a TicketReport."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from glpibot.actions.base import StepResult
from glpibot.errors import ConfigError
from glpibot.outputs import escape
from glpibot.outputs.render import Renderer
from glpibot.outputs.report import StepReport, TicketReport
from glpibot.redact import forget_secrets, register_secret

DATA = Path(__file__).parent / "data" / "cases"
# Journal lines that echo request paths chosen by anyone, and a 503 body with
# a script and a javascript: link.
REMOTE_OUTPUT = (DATA / "C04-remote-output.txt").read_text(encoding="utf-8")
HTTP_BODY = (DATA / "C04-http-body.html").read_text(encoding="utf-8")

ALLOWED_TAGS = {"p", "br", "ul", "li", "strong", "code", "pre"}


class _TagCollector(HTMLParser):
    """Collect every start tag, every attribute and the decoded text of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.text_parts.append(data)

    @property
    def text(self) -> str:
        return "".join(self.text_parts)


def parse_html(fragment: str) -> _TagCollector:
    collector = _TagCollector()
    collector.feed(fragment)
    collector.close()
    return collector


def wiki_report(*, http_output: str = HTTP_BODY, kind: str = "ok", outcome: str = "solved") -> TicketReport:
    """Build a two-step report: a unit status on a host, then an HTTP check."""
    status = StepReport(
        index=0,
        action="systemd_remote",
        params={"unit": "wiki.service", "operation": "status"},
        host="host1",
        result=StepResult(ok=True, summary="wiki.service is active", output=REMOTE_OUTPUT, duration_s=0.4),
    )
    check = StepReport(
        index=1,
        action="http_check",
        params={"url": "https://wiki.example.test/", "expect_status": 200},
        result=StepResult(
            ok=kind == "ok",
            summary="GET https://wiki.example.test/ returned 503, expected 200",
            facts={"status": 503, "title": "<title>503</title>"},
            output=http_output,
        ),
    )
    return TicketReport(
        ticket_id=17,
        ticket_name="Wiki shows <b>errors</b>",
        attempt=1,
        run_marker="glpibot-run 17-1-a1b2c3",
        outcome=outcome,
        kind=kind,
        reason="show the wiki service state",
        problems=[] if kind == "ok" else ["steps[1]: GET returned 503 <Service Unavailable>, expected 200"],
        steps=[status, check],
        started_at="2024-06-01T12:02:00Z",
        finished_at="2024-06-01T12:02:05Z",
        artifact_path="docs/generated/glpi-bot/ticket-17.md",
        idempotency_key="ticket-17-attempt-1",
    )


@pytest.fixture(autouse=True)
def _no_secrets() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


@pytest.fixture
def renderer() -> Renderer:
    return Renderer()


def assert_only_allowed_markup(fragment: str) -> _TagCollector:
    parsed = parse_html(fragment)
    assert set(parsed.tags) <= ALLOWED_TAGS, set(parsed.tags) - ALLOWED_TAGS
    assert parsed.attributes == []
    return parsed


# Remote output and HTTP bodies full of markup


@pytest.mark.parametrize("kind", ["ok", "failed"])
def test_remote_markup_shows_as_text(renderer: Renderer, kind: str) -> None:
    report = wiki_report(kind=kind, outcome="solved" if kind == "ok" else "pending")
    posted = renderer.completion_html(report) if kind == "ok" else renderer.blocked_html(report)

    parsed = assert_only_allowed_markup(posted)
    assert "<none>" in parsed.text
    assert "<img src=x onerror=alert(document.cookie)>" in parsed.text
    assert "</pre><script>fetch('/front/preference.php')</script><pre>" in parsed.text
    assert '<a href="javascript:alert(1)">details</a>' in parsed.text
    assert "<Service Unavailable>" in parsed.text or kind == "ok"


@pytest.mark.parametrize("kind", ["ok", "failed"])
def test_remote_markup_never_raw(renderer: Renderer, kind: str) -> None:
    report = wiki_report(kind=kind, outcome="solved" if kind == "ok" else "pending")
    posted = renderer.completion_html(report) if kind == "ok" else renderer.blocked_html(report)

    lowered = posted.lower()
    assert "<script" not in lowered
    assert "<img" not in lowered
    assert "<a " not in lowered
    assert re.search(r"<[^>]*(href|javascript:)", lowered) is None
    assert "<none>" not in lowered
    assert "'" not in posted
    assert '"' not in posted


def test_pre_blocks_balanced(renderer: Renderer) -> None:
    posted = renderer.completion_html(wiki_report())

    assert posted.count("<pre>") == 2
    assert posted.count("</pre>") == 2
    for block in re.findall(r"<pre>(.*?)</pre>", posted, flags=re.S):
        assert "<" not in block
        assert ">" not in block


def test_bare_ampersand_escaped(renderer: Renderer) -> None:
    posted = renderer.completion_html(wiki_report())

    assert '&amp; fallback' in posted
    assert "down &amp;amp; will" in posted


def test_long_output_cut_with_marker(renderer: Renderer) -> None:
    long_body = HTTP_BODY + "".join(f"line {number:05d}\n" for number in range(2000))
    posted = renderer.blocked_html(wiki_report(http_output=long_body, kind="failed", outcome="pending"))

    parsed = assert_only_allowed_markup(posted)
    total_kib = -(-len(long_body.encode()) // 1024)
    marker = f"[output cut: {total_kib} KiB total, first 4 KiB shown; the full text is in the artifact]"
    assert marker in parsed.text
    assert "line 00000" in parsed.text
    assert "line 01999" not in parsed.text
    second_block = re.findall(r"<pre>(.*?)</pre>", posted, flags=re.S)[1]
    shown = html.unescape(second_block).split("\n\n[output cut")[0]
    assert len(shown.encode()) <= 4096


def test_output_cut_keeps_utf8_whole() -> None:
    kept, marker = escape.cut_head("é" * 3000, 4095)

    assert marker is not None
    assert kept == "é" * 2047


def test_output_beyond_artifact_cap_marker() -> None:
    kept, marker = escape.cut_head("x" * (100 * 1024))

    assert len(kept) == 4096
    assert marker == "[output cut: 100 KiB total, first 4 KiB shown; the artifact keeps the first and the last 32 KiB]"


def test_short_output_not_cut(renderer: Renderer) -> None:
    posted = renderer.completion_html(wiki_report())

    assert "output cut" not in posted


# Ticket text is data, never a template


@pytest.mark.parametrize("method", ["claimed_html", "blocked_html", "completion_html", "artifact_markdown"])
def test_ticket_text_not_compiled(renderer: Renderer, method: str) -> None:
    report = wiki_report(kind="failed", outcome="pending")
    report.ticket_name = "{{ 7*7 }} {% raw %}"
    report.reason = "{{ 7*7 }} {% raw %}"

    rendered = getattr(renderer, method)(report)

    text = parse_html(rendered).text if method.endswith("html") else rendered
    assert "49" not in text
    if method.endswith("html"):
        assert "{{ 7*7 }} {% raw %}" in text


def test_markdown_title_keeps_template_text(renderer: Renderer) -> None:
    report = wiki_report()
    report.ticket_name = "{{ 7*7 }} {% raw %}"

    title = renderer.artifact_markdown(report).splitlines()[0]
    rendered = MarkdownIt("commonmark").render(title)

    assert html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip() == "Ticket 17: {{ 7*7 }} {% raw %}"


# Claimed follow-up


def test_claimed_shows_marker(renderer: Renderer) -> None:
    report = wiki_report(outcome="claimed")

    parsed = assert_only_allowed_markup(renderer.claimed_html(report))

    assert "glpibot claimed this ticket" in parsed.text
    assert "glpibot-run 17-1-a1b2c3" in parsed.text
    assert "attempt" not in parsed.text


def test_claimed_second_attempt(renderer: Renderer) -> None:
    report = wiki_report(outcome="claimed")
    report.attempt = 2

    assert "attempt 2" in parse_html(renderer.claimed_html(report)).text


def test_claimed_lists_planned_steps(renderer: Renderer) -> None:
    text = parse_html(renderer.claimed_html(wiki_report(outcome="claimed"))).text

    assert "Step 1: systemd_remote on host1" in text
    assert "Step 2: http_check with" in text


def test_claimed_without_steps(renderer: Renderer) -> None:
    report = TicketReport(ticket_id=3, ticket_name="t", attempt=1, run_marker="glpibot-run 3-1-ffffff")

    parsed = assert_only_allowed_markup(renderer.claimed_html(report))

    assert "Planned steps" not in parsed.text
    assert "glpibot-run 3-1-ffffff" in parsed.text


# Completion


def test_completion_lists_steps(renderer: Renderer) -> None:
    text = parse_html(renderer.completion_html(wiki_report())).text

    assert "all 2 step(s) passed" in text
    assert "Step 1: systemd_remote on host1: passed: wiki.service is active" in text
    assert "Step 2: http_check: passed" in text
    assert '"unit": "wiki.service"' in text
    assert "docs/generated/glpi-bot/ticket-17.md" in text


def test_completion_without_artifact(renderer: Renderer) -> None:
    report = wiki_report()
    report.artifact_path = None

    assert "Full record" not in renderer.completion_html(report)


# Blocked follow-ups by kind


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("no_spec", "no spec found"),
        ("invalid", "the spec is invalid"),
        ("policy", "refused by the operator's policy"),
        ("failed", "a step failed"),
        ("interrupted", "the run was interrupted"),
        ("error", "an internal error"),
    ],
)
def test_blocked_names_kind(renderer: Renderer, kind: str, words: str) -> None:
    report = wiki_report(kind=kind, outcome="pending")

    parsed = assert_only_allowed_markup(renderer.blocked_html(report))

    assert f"glpibot could not complete this ticket: {words}." in parsed.text
    assert "What to do next" in parsed.text


def test_blocked_lists_problems(renderer: Renderer) -> None:
    report = wiki_report(kind="invalid", outcome="pending")
    report.problems = ["steps[0].params.unit (line 7): 'wiki' does not match", "steps[1]: unknown key <x>"]

    text = parse_html(renderer.blocked_html(report)).text

    assert "steps[0].params.unit (line 7): 'wiki' does not match" in text
    assert "steps[1]: unknown key <x>" in text
    assert "fix the spec in the ticket description, then set the ticket back to New" in text


def test_blocked_policy_asks_operator(renderer: Renderer) -> None:
    text = parse_html(renderer.blocked_html(wiki_report(kind="policy", outcome="pending"))).text

    assert "ask the operator of glpibot to allow" in text


def test_blocked_config_problem_asks_operator(renderer: Renderer) -> None:
    report = wiki_report(kind="failed", outcome="pending")
    report.steps[0].result = StepResult(ok=False, summary="sudo requires a password", config_problem=True)
    report.steps[1].result = None
    report.steps[1].not_run_reason = "an earlier step failed"

    text = parse_html(renderer.blocked_html(report)).text

    assert "setup problem on the glpibot side" in text
    assert "Step 2: http_check: not run (an earlier step failed)" in text


def test_no_spec_shows_example(renderer: Renderer) -> None:
    report = TicketReport(
        ticket_id=8, ticket_name="please fix", attempt=1, run_marker="glpibot-run 8-1-000000",
        outcome="pending", kind="no_spec", problems=["no spec found in the ticket description"],
    )

    posted = renderer.blocked_html(report)

    parsed = assert_only_allowed_markup(posted)
    assert "No YAML block was found" in parsed.text
    example = re.search(r"<pre>(.*?)</pre>", posted, flags=re.S)
    assert example is not None
    assert "glpibot: 1" in example.group(1)
    assert "action: http_check" in example.group(1)


def test_interrupted_names_step(renderer: Renderer) -> None:
    pull = StepReport(
        index=0, action="docker_compose_remote", params={"project": "grafana", "operation": "pull"},
        host="svc-auto", result=StepResult(ok=True, summary="pulled"),
    )
    up = StepReport(
        index=1, action="docker_compose_remote", params={"project": "grafana", "operation": "up"},
        host="svc-auto", changes_state=True,
    )
    report = TicketReport(
        ticket_id=9, ticket_name="grafana", attempt=1, run_marker="glpibot-run 9-1-abcdef",
        outcome="pending", kind="error", steps=[pull, up],
    )

    parsed = assert_only_allowed_markup(renderer.interrupted_html(report))

    assert "the run was interrupted" in parsed.text
    assert "step 2, docker_compose_remote on svc-auto" in parsed.text
    assert "may or may not have taken effect" in parsed.text
    assert "Setting the ticket back to New retries the run" in parsed.text
    assert "Step 1: docker_compose_remote on svc-auto: passed: pulled" in parsed.text


# Secrets


def test_secret_masked_everywhere(renderer: Renderer) -> None:
    register_secret("s3cr&t-value")
    report = wiki_report(kind="failed", outcome="pending")
    report.ticket_name = "token s3cr&t-value"
    report.steps[1].result.output = "Authorization: Bearer abcdefghijkl123\nkey=s3cr&t-value"
    report.steps[0].params["password"] = "hunter2-long"

    for method in ("blocked_html", "completion_html", "artifact_markdown", "claimed_html"):
        rendered = getattr(renderer, method)(report)
        assert "s3cr&t-value" not in rendered, method
        assert "s3cr&amp;t-value" not in rendered, method
        assert "abcdefghijkl123" not in rendered, method
        assert "hunter2-long" not in rendered, method


# Operator templates


def test_override_one_template(tmp_path: Path) -> None:
    (tmp_path / "claimed.html.j2").write_text("<p>Taken: {{ report.ticket_name }}</p>\n", encoding="utf-8")
    renderer = Renderer(tmp_path)
    report = wiki_report()

    assert renderer.claimed_html(report) == "<p>Taken: Wiki shows &lt;b&gt;errors&lt;/b&gt;</p>\n"
    assert "glpibot completed this ticket" in renderer.completion_html(report)


def test_override_markdown_not_autoescaped(tmp_path: Path) -> None:
    (tmp_path / "artifact.md.j2").write_text("{{ report.ticket_name }}|{{ report.ticket_name|md_inline }}", encoding="utf-8")

    rendered = Renderer(tmp_path).artifact_markdown(wiki_report())

    assert rendered == "Wiki shows <b>errors</b>|Wiki shows &lt;b&gt;errors&lt;/b&gt;"


def test_override_cannot_reach_internals(tmp_path: Path) -> None:
    (tmp_path / "claimed.html.j2").write_text(
        "{{ report.__class__.__mro__[1].__subclasses__() }}", encoding="utf-8"
    )

    with pytest.raises(ConfigError, match="claimed.html.j2"):
        Renderer(tmp_path).claimed_html(wiki_report())


def test_override_cannot_change_report(tmp_path: Path) -> None:
    (tmp_path / "claimed.html.j2").write_text("{{ report.problems.append('x') }}", encoding="utf-8")
    report = wiki_report(kind="failed", outcome="pending")

    with pytest.raises(ConfigError):
        Renderer(tmp_path).claimed_html(report)
    assert len(report.problems) == 1


def test_override_dir_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a directory"):
        Renderer(tmp_path / "absent")


def test_override_undefined_name(tmp_path: Path) -> None:
    (tmp_path / "blocked.html.j2").write_text("<p>{{ no_such_value }}</p>", encoding="utf-8")

    with pytest.raises(ConfigError, match="no_such_value"):
        Renderer(tmp_path).blocked_html(wiki_report(kind="failed", outcome="pending"))


# Markdown artifact


def render_markdown(text: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(text)


def test_artifact_title_and_table(renderer: Renderer) -> None:
    markdown = renderer.artifact_markdown(wiki_report(kind="failed", outcome="pending"))
    lines = markdown.splitlines()

    assert lines[0] == "# Ticket 17: Wiki shows &lt;b&gt;errors&lt;/b&gt;"
    assert "| Outcome | pending (a step failed) |" in lines
    assert "| Attempt | 1 |" in lines
    assert "| Run marker | glpibot-run 17-1-a1b2c3 |" in lines
    assert "| Started | 2024-06-01T12:02:00Z |" in lines
    assert "| Finished | 2024-06-01T12:02:05Z |" in lines
    assert "| Reason | show the wiki service state |" in lines


def test_artifact_hostile_name_stays_text(renderer: Renderer) -> None:
    report = wiki_report()
    report.ticket_name = "<img src=x onerror=alert(1)> [a](javascript:alert(1)) ![i](http://x/i.png) **b** `c`"
    report.reason = "cell | break\nnew row | <script>x</script> \\| still"

    rendered = render_markdown(renderer.artifact_markdown(report))

    assert "<img" not in rendered
    assert "<a " not in rendered
    assert "<script" not in rendered
    assert "<strong>" not in rendered
    assert "<code>c</code>" not in rendered
    assert rendered.count("<tr>") == 7


def test_artifact_table_rows_with_pipes(renderer: Renderer) -> None:
    report = wiki_report()
    report.reason = "a | b\nc"

    rendered = render_markdown(renderer.artifact_markdown(report))

    assert "<td>a | b c</td>" in rendered


def test_artifact_fence_beats_backticks(renderer: Renderer) -> None:
    output = "plain\n```\nnot the end\n`````` and ~~~~~~~ too\n"
    report = wiki_report(http_output=output)

    markdown = renderer.artifact_markdown(report)

    fences = re.findall(r"^(`{3,})text$", markdown, flags=re.M)
    assert len(fences) == 2
    longest_inside = max(len(run) for run in re.findall(r"`+|~+", output))
    assert len(fences[1]) > longest_inside
    rendered = render_markdown(markdown)
    assert "<pre><code class=\"language-text\">plain\n```\nnot the end\n`````` and ~~~~~~~ too\n</code></pre>" in rendered


def test_artifact_keeps_raw_output(renderer: Renderer) -> None:
    markdown = renderer.artifact_markdown(wiki_report())

    assert "config value <none> for key \"cache\" & fallback" in markdown
    rendered = render_markdown(markdown)
    assert "<script" not in rendered
    assert "&lt;/pre&gt;&lt;script&gt;" in rendered


def test_artifact_output_head_and_tail(renderer: Renderer) -> None:
    output = "".join(f"line {number:06d}\n" for number in range(20000))
    markdown = renderer.artifact_markdown(wiki_report(http_output=output))

    assert "line 000000" in markdown
    assert "line 019999" in markdown
    assert "line 010000" not in markdown
    assert "[output cut: 235 KiB total; the first and the last 32 KiB are kept]" in markdown


def test_artifact_params_and_facts_json(renderer: Renderer) -> None:
    markdown = renderer.artifact_markdown(wiki_report())

    assert '```json\n{\n  "operation": "status",\n  "unit": "wiki.service"\n}\n```' in markdown
    assert '"title": "<title>503</title>"' in markdown


def test_artifact_not_run_step(renderer: Renderer) -> None:
    report = wiki_report(kind="failed", outcome="pending")
    report.steps[1].result = None
    report.steps[1].not_run_reason = "an earlier step failed"

    markdown = renderer.artifact_markdown(report)

    assert "- Result: not run" in markdown
    assert "- Not run because: an earlier step failed" in markdown


# Escape helpers


@given(st.text())
def test_fence_longer_than_runs(text: str) -> None:
    fence = escape.md_fence(text)

    runs = re.findall(r"`+|~+", text)
    assert len(fence) >= 3
    assert all(len(fence) > len(run) for run in runs)


@given(st.text())
def test_md_inline_single_line(text: str) -> None:
    escaped = escape.md_inline(text)

    assert "\n" not in escaped
    assert "\r" not in escaped
    assert "<" not in escaped
    assert re.search(r"(?<!\\)\|", escaped) is None


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=200))
def test_md_inline_renders_as_typed(text: str) -> None:
    rendered = MarkdownIt("commonmark").render(escape.md_inline(text))

    expected = " ".join(text.split())
    assert "<a" not in rendered
    assert "<img" not in rendered
    assert html.unescape(re.sub(r"</?p>\n?", "", rendered)).strip() == expected


@given(st.text())
def test_html_lines_round_trip(text: str) -> None:
    markup = str(escape.html_lines(text))

    parsed = parse_html(f"<p>{markup}</p>")
    assert set(parsed.tags) <= {"p", "br"}
    expected = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "")
    assert parsed.text == expected
