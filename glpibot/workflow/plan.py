"""The dry-run description of what a pass would do with one ticket."""

from __future__ import annotations

from typing import Any

from glpibot.actions import get_action
from glpibot.config import Config
from glpibot.errors import SpecError
from glpibot.policy import check_policy
from glpibot.spec.validate import parse_ticket_body


def describe_plan(ticket: dict[str, Any], config: Config) -> tuple[str, str]:
    """Return ("would_solve" or "would_block", one line saying which steps would run or why not)."""
    try:
        spec = parse_ticket_body(str(ticket.get("content") or ""))
        check_policy(spec, config)
    except SpecError as exc:
        return "would_block", "; ".join(str(issue) for issue in exc.issues)
    steps = []
    for step in spec.steps:
        action = get_action(step.action)
        where = f" on {step.host}" if step.host else ""
        change = " (changes state)" if action.changes_state(step.params) else ""
        steps.append(f"{step.action}{where}{change}")
    return "would_solve", "run " + ", then ".join(steps)
