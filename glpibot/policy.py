"""The operator's policy over a validated spec: may these steps run here at all?"""

from __future__ import annotations

from glpibot.actions import get_action
from glpibot.config import Config
from glpibot.errors import SpecError, SpecIssue
from glpibot.spec.model import Spec


def policy_issues(spec: Spec, config: Config) -> list[SpecIssue]:
    """Return every policy refusal of every step; checks the inventory, then the action's own allowlists.

    Nothing here opens a connection: a refused step never reaches a host.
    """
    issues: list[SpecIssue] = []
    for step in spec.steps:
        action = get_action(step.action)
        prefix = f"{step.path}." if step.path else ""
        if action.runs_on == "ssh":
            if step.host not in config.hosts:
                known = ", ".join(sorted(config.hosts)) or "none configured"
                issues.append(
                    SpecIssue(
                        f"{prefix}host",
                        f"host '{step.host}' is not in the inventory (known hosts: {known}); "
                        f"add it under hosts in the config",
                        step.line_of("host"),
                    )
                )
                continue
        issues.extend(action.check_policy(step, config))
    return issues


def check_policy(spec: Spec, config: Config) -> None:
    """Raise SpecError(kind="policy") with every refusal, or return when the whole spec is allowed."""
    issues = policy_issues(spec, config)
    if issues:
        raise SpecError(issues, kind="policy")
