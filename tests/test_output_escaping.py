"""Hostile ticket text and remote or HTTP output in every place it is written: follow-ups, solutions, the artifact, logs.

Each hostile string must come out as the text it is, in the form of its
context: HTML text in GLPI messages, Markdown text, a table cell or a code
block in the artifact, one line in the log. Ticket text is data for the
templates, never a template itself.
"""

from __future__ import annotations

import html
import io
import logging
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from glpibot.actions.base import StepResult
from glpibot.config import ArtifactSettings
from glpibot.logs import production_handler, ticket_context
from glpibot.outputs.artifacts import ArtifactError, artifact_name, write_artifact
from glpibot.outputs.render import Renderer
from glpibot.outputs.report import StepReport, TicketReport
from glpibot.redact import forget_secrets
from tests.botenv import BotEnv
from tests.httpservers import LocalHttpServer, Reply

# Markup, template syntax, Markdown syntax, line breaks and control characters.
HOSTILE = [
    "<script>alert(1)</script>",
    "</pre></code></li></ul><img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)> \'single\'',
    "&lt;b&gt;already escaped&lt;/b&gt; &amp; &#60;i&#62;",
    "<!-- comment --> <![CDATA[x]]> <?php echo 1; ?>",
    "{{ 7*7 }} {% raw %}{{ x }}{% endraw %} {# note #} ${7*7}",
    "[link](javascript:alert(1)) ![image](http://127.0.0.2/i.png) <http://127.0.0.2/>",
    "**bold** _italic_ `code` ~~strike~~ \\*escaped\\*",
    "# heading\n- item\n1. item\n> quote\n---\n===",
    "cell | other | cell\nnext row | x",
    "```\nnot the end\n``````\n~~~~~~~ also ~~~",
    "line one\r\nline two\rline three\u2028line four\x85five",
    "nul \x00 bell \x07 escape \x1b[31m red",
    "right-to-left \u202eoverride\u202c and zero\u200bwidth",
    "www.example.test javascript:alert(1) data:text/html,x",
]
IDS = [f"hostile{index}" for index in range(len(HOSTILE))]
FOLLOWUP_TAGS = {"p", "br", "ul", "li", "strong", "code", "pre"}
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
LINE_BREAKS = re.compile("\r\n|\r|\n")


@pytest.fixture(autouse=True)
def _no_secrets() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


@pytest.fixture
def renderer() -> Renderer:
    return Renderer()


def hostile_report(text: str, *, kind: str = "failed", outcome: str = "pending") -> TicketReport:
    """Return a two-step report with `text` in every untrusted field: name, reason, problem, params, summary, output."""
    ran = StepReport(
        index=0,
        action="http_check",
        params={"url": "http://127.0.0.1:8080/health", "expect_body_contains": text},
        result=StepResult(ok=kind == "ok", summary=f"GET returned 503: {text}", output=text, facts={"title": text}),
    )
    later = StepReport(
        index=1, action="systemd_remote", params={"unit": "nginx.service"}, host="svc-auto", not_run_reason=text
    )
    return TicketReport(
        ticket_id=17,
        ticket_name=text,
        attempt=1,
        run_marker="glpibot-run 17-1-a1b2c3",
        outcome=outcome,
        kind=kind,
        reason=text,
        problems=[] if kind == "ok" else [f"steps[0].params.url (line 4): {text}"],
        steps=[ran] if kind == "ok" else [ran, later],
        started_at="2024-06-01T12:02:00Z",
        finished_at="2024-06-01T12:02:05Z",
        artifact_path="docs/ticket-17.md",
    )


class _Html(HTMLParser):
    """Collect start tags, attributes and decoded text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attributes: list[tuple[str, str | None]] = []
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.extend(attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def parse_html(fragment: str) -> _Html:
    parser = _Html()
    parser.feed(fragment)
    parser.close()
    return parser


def pieces(text: str) -> list[str]:
    """Return the non-blank lines of text; HTML turns line breaks into <br>, so lines are compared one by one."""
    return [line for line in LINE_BREAKS.split(text) if line.strip()]


def flat(text: str) -> str:
    """Return text as Markdown inline values show it: one line, whitespace runs as one space."""
    return " ".join(text.split())


def render_markdown(text: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(text)


def fence_contents(markdown: str) -> list[str]:
    return [token.content for token in MarkdownIt("commonmark").enable("table").parse(markdown) if token.type == "fence"]


# GLPI messages: follow-ups and the solution


@pytest.mark.parametrize("method", ["claimed_html", "blocked_html", "interrupted_html"])
@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_followup_markup_is_text(renderer: Renderer, method: str, text: str) -> None:
    report = hostile_report(text)
    if method == "interrupted_html":
        report.steps[0].result = None
        report.steps[0].changes_state = True

    parsed = parse_html(getattr(renderer, method)(report))

    assert parsed.tags <= FOLLOWUP_TAGS
    assert parsed.attributes == []
    assert [line for line in pieces(text) if line not in parsed.text] == []


@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_solution_markup_is_text(renderer: Renderer, text: str) -> None:
    parsed = parse_html(renderer.completion_html(hostile_report(text, kind="ok", outcome="solved")))

    assert parsed.tags <= FOLLOWUP_TAGS
    assert parsed.attributes == []
    assert [line for line in pieces(text) if line not in parsed.text] == []


@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_followup_output_kept_in_pre(renderer: Renderer, text: str) -> None:
    rendered = renderer.blocked_html(hostile_report(text))

    blocks = re.findall(r"<pre>(.*?)</pre>", rendered, re.DOTALL)
    assert [html.unescape(block) for block in blocks] == [text]


# The Markdown artifact


@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_artifact_title_is_text(renderer: Renderer, text: str) -> None:
    rendered = render_markdown(renderer.artifact_markdown(hostile_report(text)))

    title = re.search(r"<h1>(.*?)</h1>", rendered, re.DOTALL)
    assert title is not None
    assert "<" not in title.group(1)
    assert html.unescape(title.group(1)) == f"Ticket 17: {flat(text)}".replace("\x00", "\ufffd")


@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_artifact_table_keeps_rows(renderer: Renderer, text: str) -> None:
    rendered = render_markdown(renderer.artifact_markdown(hostile_report(text)))

    rows = re.findall(r"<tr>\n(.*?)</tr>", rendered, re.DOTALL)
    reason = [row for row in rows if row.startswith("<td>Reason</td>")]
    assert len(rows) == 7
    assert len(reason) == 1
    assert reason[0].count("<td>") == 2
    cell = re.search(r"<td>Reason</td>\n<td>(.*?)</td>", reason[0], re.DOTALL)
    assert cell is not None
    assert html.unescape(cell.group(1)) == flat(text).replace("\x00", "\ufffd")


@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_artifact_output_fenced_whole(renderer: Renderer, text: str) -> None:
    markdown = renderer.artifact_markdown(hostile_report(text))

    expected = LINE_BREAKS.sub("\n", text).replace("\x00", "\ufffd")
    assert expected.rstrip("\n") + "\n" in fence_contents(markdown)


@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_artifact_no_markup_from_text(renderer: Renderer, text: str) -> None:
    rendered = render_markdown(renderer.artifact_markdown(hostile_report(text)))
    outside_code = re.sub(r"<pre><code[^>]*>.*?</code></pre>", "", rendered, flags=re.DOTALL)

    parsed = parse_html(outside_code)
    assert parsed.tags <= {"h1", "h2", "h3", "table", "thead", "tbody", "tr", "th", "td", "ul", "li", "p"}
    assert parsed.attributes == []


def test_artifact_fence_outgrows_backticks(renderer: Renderer) -> None:
    output = "a\n" + "`" * 12 + "\n" + "~" * 15 + "\nb\n"

    markdown = renderer.artifact_markdown(hostile_report(output))

    assert output in fence_contents(markdown)
    assert "`" * 16 + "text" in markdown


def test_artifact_file_named_by_id(tmp_path: Path, renderer: Renderer) -> None:
    report = hostile_report("../../etc/passwd\n.md")
    report.ticket_name = "../../../outside.md"

    path = write_artifact(ArtifactSettings(dir=tmp_path / "docs"), report, renderer.artifact_markdown(report))

    assert path == tmp_path / "docs" / "ticket-17.md"
    assert sorted(item.name for item in tmp_path.rglob("*")) == ["docs", "ticket-17.md"]


@pytest.mark.parametrize("ticket_id", ["17/../x", "17", True, 0, -3, 1.5, None], ids=repr)
def test_artifact_name_needs_int_id(ticket_id: object) -> None:
    with pytest.raises(ArtifactError):
        artifact_name(ticket_id)  # type: ignore[arg-type]


# Template syntax in ticket text


TEMPLATE_TEXT = "{{ 7*7 }} {% raw %}{{ 6*7 }}{% endraw %} {{ report.__class__ }} {# c #}"


@pytest.mark.parametrize("method", ["claimed_html", "blocked_html", "completion_html"])
def test_template_text_html_literal(renderer: Renderer, method: str) -> None:
    rendered = getattr(renderer, method)(hostile_report(TEMPLATE_TEXT))

    assert TEMPLATE_TEXT in html.unescape(rendered)
    assert "49" not in rendered
    assert "42" not in rendered


def test_template_text_markdown_literal(renderer: Renderer) -> None:
    markdown = renderer.artifact_markdown(hostile_report(TEMPLATE_TEXT))
    rendered = html.unescape(render_markdown(markdown))

    assert f"Ticket 17: {TEMPLATE_TEXT}" in rendered
    assert TEMPLATE_TEXT + "\n" in fence_contents(markdown)
    assert "49" not in rendered
    assert "TicketReport" not in rendered


# Log lines


@pytest.fixture
def log_stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Send every record at INFO and above through glpibot's production handler into a string."""
    stream = io.StringIO()
    handler = production_handler(stream)
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", logging.INFO)
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


FORGED = "x\n2024-06-01 12:00:00,000 ERROR glpibot: forged line\r2024-06-01 12:00:01,000 INFO glpibot: again"


def test_log_message_newline_one_line(log_stream: io.StringIO) -> None:
    with ticket_context(17):
        logging.getLogger("glpibot.test").info("ticket name %s", FORGED)

    lines = log_stream.getvalue().splitlines()
    assert len(lines) == 1
    assert LOG_LINE.match(lines[0])
    assert "ticket=17" in lines[0]
    assert "x\\n2024-06-01 12:00:00,000 ERROR" in lines[0]


@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_log_hostile_text_one_line(log_stream: io.StringIO, text: str) -> None:
    logging.getLogger("glpibot.test").warning("value %s", text)

    assert len(log_stream.getvalue().splitlines()) == 1


def test_log_traceback_kept(log_stream: io.StringIO) -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logging.getLogger("glpibot.test").exception("failed on %s", "a\nb")

    lines = log_stream.getvalue().splitlines()
    assert lines[0].endswith("failed on a\\nb")
    assert "Traceback (most recent call last):" in lines


# Whole passes: ticket text and HTTP output through GLPI, the artifact and the log


HOSTILE_BODY = (
    "<html><script>alert(1)</script></pre><img src=x onerror=alert(1)>\n"
    "```` {{ 7*7 }} | cell |\n~~~~\n</code></li><!-- x -->"
)
HOSTILE_NAME = "{{ 7*7 }} <b>name</b> | cell\n2024-06-01 12:00:00,000 ERROR glpibot: forged"


def _http_spec(url: str) -> str:
    return f'glpibot: 1\nreason: "{{{{ 7*7 }}}} <i>why</i>"\naction: http_check\nparams:\n  url: "{url}"\n  expect_status: 200\n'


@pytest.fixture
def hostile_server() -> Iterator[LocalHttpServer]:
    with LocalHttpServer() as server:
        server.route("/down", Reply(503, HOSTILE_BODY.encode("utf-8"), {"Content-Type": "text/html; charset=utf-8"}))
        server.route("/up", Reply(200, HOSTILE_BODY.encode("utf-8"), {"Content-Type": "text/html; charset=utf-8"}))
        yield server


def test_pass_http_output_in_followup(bot: BotEnv, hostile_server: LocalHttpServer) -> None:
    ticket = bot.ticket(HOSTILE_NAME, _http_spec(hostile_server.url("/down")))

    bot.run()

    blocked = parse_html(bot.sim.followups(ticket)[-1]["content"])
    assert bot.status(ticket) == 4
    assert blocked.tags <= FOLLOWUP_TAGS | {"small"}
    assert blocked.attributes == []
    assert [line for line in pieces(HOSTILE_BODY) if line not in blocked.text] == []


def test_pass_http_output_in_solution(bot: BotEnv, hostile_server: LocalHttpServer) -> None:
    ticket = bot.ticket(HOSTILE_NAME, _http_spec(hostile_server.url("/up")))

    bot.run()

    solutions = bot.sim.solutions(ticket)
    assert len(solutions) == 1
    solution = parse_html(solutions[0]["content"])
    assert solution.tags <= FOLLOWUP_TAGS | {"small"}
    assert solution.attributes == []
    assert "{{ 7*7 }} <i>why</i>" in solution.text
    assert [line for line in pieces(HOSTILE_BODY) if line not in solution.text] == []


def test_pass_artifact_keeps_text(bot: BotEnv, hostile_server: LocalHttpServer) -> None:
    ticket = bot.ticket(HOSTILE_NAME, _http_spec(hostile_server.url("/down")))

    bot.run()

    files = sorted(path.name for path in bot.artifact_dir.iterdir())
    markdown = (bot.artifact_dir / f"ticket-{ticket}.md").read_text(encoding="utf-8")
    rendered = render_markdown(markdown)
    assert files == [f"ticket-{ticket}.md"]
    assert markdown.splitlines()[0].startswith(f"# Ticket {ticket}: \\{{\\{{ 7\\*7 \\}}\\}}")
    assert "<img" not in rendered
    assert "<script" not in rendered
    assert "<b>" not in rendered
    assert HOSTILE_BODY + "\n" in fence_contents(markdown)


def test_pass_log_one_line_per_record(bot: BotEnv, hostile_server: LocalHttpServer, log_stream: io.StringIO) -> None:
    bot.ticket(HOSTILE_NAME, _http_spec(hostile_server.url("/down")))
    bot.ticket(HOSTILE_NAME, content="<p>no spec here</p>")
    bot.ticket(HOSTILE_NAME, 'glpibot: 1\naction: http_check\nparams:\n  url: "http://127.0.0.1:1/\\nforged"\n')

    summary = bot.run()

    lines = log_stream.getvalue().splitlines()
    assert summary.exit_code == 0
    assert len(lines) > 5
    assert [line for line in lines if not LOG_LINE.match(line)] == []
