"""Demo data for the GLPI simulator: five tickets that show each path a poll pass can take."""

from __future__ import annotations

from html import escape

from glpibot.testing.simulator import GlpiSimulator

BOT_LOGIN = "homelab-bot"


def _editor_paragraphs(lines: list[str]) -> str:
    """Render YAML lines as GLPI 11's editor stores typed text: one <p>, <br> breaks, &nbsp; indentation."""
    rendered = []
    for line in lines:
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        rendered.append("&nbsp; " * (indent // 2) + escape(stripped, quote=False))
    return "<p>" + "<br>".join(rendered) + "</p>"


def _pre_block(lines: list[str]) -> str:
    """Render YAML lines as the editor's code block: <pre><code> with escaped text."""
    return '<pre class="language-yaml"><code>' + escape("\n".join(lines), quote=False) + "\n</code></pre>"


def _http_check_lines(url: str, reason: str) -> list[str]:
    return [
        "glpibot: 1",
        "action: http_check",
        "params:",
        f'  url: "{url}"',
        "  expect_status: 200",
        f"reason: {reason}",
    ]


def seed_demo(sim: GlpiSimulator, http_url: str) -> dict[str, int]:
    """Add the demo tickets and return their ids by label.

    `http_url` is the URL the valid http_check requests, and it must return 200
    (the simulator's own `/health` does). The failing check requests
    `<sim.url>/missing-page`, for which the simulator returns 404.
    Labels: valid, invalid, failing, not_assigned, other_category.
    """
    bot_id = sim.users[BOT_LOGIN][0] if BOT_LOGIN in sim.users else 7
    other_category = sim.add_category("Network")
    tickets: dict[str, int] = {}

    tickets["valid"] = sim.add_ticket(
        name="Check the wiki after the upgrade",
        content="<p>Hello bot, please check that the wiki answers after tonight's upgrade.</p>\n"
        + _editor_paragraphs(["```yaml"] + _http_check_lines(http_url, "wiki upgrade check") + ["```"])
        + "\n<p>Thanks,<br>tech</p>",
        assigned_user_ids=[bot_id],
    )
    tickets["invalid"] = sim.add_ticket(
        name="Check the wiki (spec with a typo)",
        content="<p>Same check, but the key name is misspelled.</p>\n"
        + _pre_block(["glpibot: 1", "action: http_check", "params:", f'  url: "{http_url}"', "  expect_staus: 200"]),
        assigned_user_ids=[bot_id],
    )
    tickets["failing"] = sim.add_ticket(
        name="Check a page that does not exist",
        content="<p>This check must fail: the page returns 404.</p>\n"
        + _pre_block(_http_check_lines(f"{sim.url}/missing-page", "show a failed check")),
        assigned_user_ids=[bot_id],
    )
    tickets["not_assigned"] = sim.add_ticket(
        name="Waiting for a technician",
        content="<p>Nobody assigned this ticket to the bot yet.</p>\n"
        + _pre_block(_http_check_lines(http_url, "not for the bot yet")),
    )
    tickets["other_category"] = sim.add_ticket(
        name="Network ticket assigned to the bot",
        content="<p>Assigned to the bot, but filed under another category.</p>\n"
        + _pre_block(_http_check_lines(http_url, "wrong category")),
        category_id=other_category,
        assigned_user_ids=[bot_id],
    )
    return tickets
