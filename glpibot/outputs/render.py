"""Render follow-ups, solutions and the Markdown artifact from a TicketReport.

Templates come from the operator's `templates_dir` first, file by file, then
from the bundled folder. They run in Jinja2's immutable sandbox, so an
operator's template cannot reach Python internals or change the report.
`.html.j2` templates autoescape every value; `.md.j2` templates do not, and
escape with the `md_*` filters instead. Ticket text is only ever passed as
data to a template, never compiled as one. Every rendered string goes through
`redact` before it is returned.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from glpibot import resources
from glpibot.actions.base import StepResult
from glpibot.errors import ConfigError
from glpibot.outputs import escape
from glpibot.outputs.report import StepReport, TicketReport
from glpibot.redact import redact, redact_data

logger = logging.getLogger(__name__)

KIND_WORDS = {
    "ok": "completed",
    "no_spec": "no spec found",
    "invalid": "the spec is invalid",
    "policy": "refused by the operator's policy",
    "failed": "a step failed",
    "interrupted": "the run was interrupted",
    "error": "an internal error",
}


@dataclass(frozen=True)
class StepView:
    """A step prepared for templates: values redacted, output cut to the follow-up and artifact caps."""

    number: int  # 1-based, as people count steps
    action: str
    host: str | None
    params_json: str  # one line, for a follow-up
    params_json_block: str  # indented, for the artifact
    changes_state: bool
    ran: bool
    ok: bool
    state: str  # "passed", "failed" or "not run"
    summary: str
    not_run_reason: str | None
    duration_s: float | None
    timed_out: bool
    config_problem: bool
    facts_json_block: str | None
    followup_output: str  # at most escape.FOLLOWUP_OUTPUT_CAP bytes
    followup_output_marker: str | None
    artifact_output: str  # at most escape.ARTIFACT_OUTPUT_CAP bytes plus a marker line


def redacted_report(report: TicketReport) -> TicketReport:
    """Return a copy of the report with every string masked by `redact`.

    Masking the values before escaping matters: a secret that contains `&`
    or `"` no longer matches once it is HTML-escaped.
    """
    steps = [_redacted_step(step) for step in report.steps]
    return dataclasses.replace(
        report,
        ticket_name=redact(report.ticket_name),
        run_marker=redact(report.run_marker),
        reason=redact(report.reason) if report.reason is not None else None,
        problems=[redact(problem) for problem in report.problems],
        steps=steps,
        artifact_path=redact(report.artifact_path) if report.artifact_path else report.artifact_path,
    )


def _redacted_step(step: StepReport) -> StepReport:
    result = step.result
    if result is not None:
        result = dataclasses.replace(
            result,
            summary=redact(result.summary),
            output=redact(result.output),
            facts=_as_dict(redact_data(result.facts)),
        )
    return dataclasses.replace(
        step,
        params=_as_dict(redact_data(step.params)),
        host=redact(step.host) if step.host else step.host,
        result=result,
        not_run_reason=redact(step.not_run_reason) if step.not_run_reason else step.not_run_reason,
    )


def _as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _step_view(step: StepReport) -> StepView:
    result: StepResult | None = step.result
    output = result.output if result is not None else ""
    followup_output, marker = escape.cut_head(output)
    artifact_output, _ = escape.cut_head_tail(output)
    if result is None:
        state = "not run"
    else:
        state = "passed" if result.ok else "failed"
    facts_block = None
    if result is not None and result.facts:
        facts_block = redact(escape.to_json(result.facts))
    return StepView(
        number=step.index + 1,
        action=step.action,
        host=step.host,
        # A second pass over the JSON text catches `"password": "..."` shapes.
        params_json=redact(escape.to_compact_json(step.params)),
        params_json_block=redact(escape.to_json(step.params)),
        changes_state=step.changes_state,
        ran=result is not None,
        ok=bool(result and result.ok),
        state=state,
        summary=result.summary if result is not None else "",
        not_run_reason=step.not_run_reason,
        duration_s=result.duration_s if result is not None else None,
        timed_out=bool(result and result.timed_out),
        config_problem=bool(result and result.config_problem),
        facts_json_block=facts_block,
        followup_output=followup_output,
        followup_output_marker=marker,
        artifact_output=artifact_output,
    )


def interrupted_step(steps: list[StepView]) -> StepView | None:
    """Return the step a dead pass left running: the first state-changing step without a result.

    Falls back to the first step without a result when none of them changes state.
    """
    not_run = [step for step in steps if not step.ran]
    for step in not_run:
        if step.changes_state:
            return step
    return not_run[0] if not_run else None


def _build_environment(templates_dir: Path | None) -> ImmutableSandboxedEnvironment:
    search_path = [str(resources.templates_dir())]
    if templates_dir is not None:
        search_path.insert(0, str(templates_dir))
    environment = ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader(search_path),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2",),
            disabled_extensions=("md.j2",),
            default=True,
            default_for_string=True,
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["br"] = escape.html_lines
    environment.filters["md_inline"] = escape.md_inline
    environment.filters["md_code_block"] = escape.md_code_block
    return environment


class Renderer:
    """Render the HTML posted to GLPI and the Markdown artifact of one ticket attempt."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        if templates_dir is not None and not templates_dir.is_dir():
            raise ConfigError(
                f"templates_dir {templates_dir} is not a directory; create it or remove templates_dir from the config"
            )
        self.templates_dir = templates_dir
        self._environment = _build_environment(templates_dir)

    def claimed_html(self, report: TicketReport) -> str:
        """Render the follow-up posted when glpibot claims a ticket."""
        return self._render("claimed.html.j2", report)

    def blocked_html(self, report: TicketReport) -> str:
        """Render the follow-up posted when a ticket goes to Pending. The wording follows report.kind."""
        return self._render("blocked.html.j2", report)

    def interrupted_html(self, report: TicketReport) -> str:
        """Render the follow-up for a state-changing step that a dead pass left running."""
        return self._render("blocked.html.j2", report, kind="interrupted")

    def completion_html(self, report: TicketReport) -> str:
        """Render the solution posted when every step passed."""
        return self._render("completion.html.j2", report)

    def artifact_markdown(self, report: TicketReport) -> str:
        """Render the per-ticket Markdown artifact for the documentation repository."""
        return self._render("artifact.md.j2", report)

    def _render(self, name: str, report: TicketReport, *, kind: str | None = None) -> str:
        safe_report = redacted_report(report)
        steps = [_step_view(step) for step in safe_report.steps]
        kind = kind or safe_report.kind
        stopped = interrupted_step(steps) if kind == "interrupted" else None
        if stopped is not None:
            position = steps.index(stopped)
            stopped = dataclasses.replace(stopped, state="interrupted, may or may not have taken effect")
            steps[position] = stopped
        context: dict[str, Any] = {
            "report": safe_report,
            "steps": steps,
            "kind": kind,
            "kind_words": KIND_WORDS.get(kind, kind),
            "interrupted_step": stopped,
            "config_problem": any(step.config_problem for step in steps),
            "followup_cap_kib": escape.FOLLOWUP_OUTPUT_CAP // escape.KIB,
        }
        try:
            template = self._environment.get_template(name)
            text = template.render(context)
        except jinja2.TemplateError as exc:
            line = getattr(exc, "lineno", None)
            at = f" line {line}" if line else ""
            hint = ""
            if self.templates_dir is not None:
                hint = f"; fix or remove the file in templates_dir {self.templates_dir} if it overrides {name}"
            message = f"cannot render template {name}{at}: {redact(str(exc))}{hint}"
            logger.error("ticket %s: %s", report.ticket_id, message)
            raise ConfigError(message) from exc
        return redact(text)
