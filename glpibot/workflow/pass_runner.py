"""One pass: resolve the bot's ids, find eligible tickets, carry each through its lifecycle.

One ticket's failure never stops the pass. Only GLPI being unreachable or
rejecting the bot's credentials does, because every later ticket would hit
the same wall.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from glpibot.config import Config
from glpibot.credentials import GLPI_CLIENT_SECRET, GLPI_PASSWORD, MEMORY_TOKEN, SSH_KEY_PASSPHRASE, read_secret
from glpibot.errors import ConfigError, GlpiAuthError, GlpibotError, GlpiError, GlpiNotFoundError, GlpiUnreachableError
from glpibot.exitcodes import ExitCode
from glpibot.glpi.client import GlpiClient
from glpibot.ledger import Attempt, Ledger
from glpibot.logs import ticket_context
from glpibot.outputs.artifacts import remove_stale_temp_files
from glpibot.outputs.render import Renderer
from glpibot.redact import redact
from glpibot.workflow.attempts import attempt_for
from glpibot.workflow.effects import Effects
from glpibot.workflow.eligibility import ineligibility_reason, status_id
from glpibot.workflow.lock import PassLock
from glpibot.workflow.plan import describe_plan
from glpibot.workflow.session import PassSession
from glpibot.workflow.ticket import PassDeadlineReached, TicketRun

log = logging.getLogger(__name__)


@dataclass
class TicketOutcome:
    ticket_id: int
    outcome: str  # solved | pending | skipped | not_found | error | not_reached | would_solve | would_block
    kind: str = ""
    summary: str = ""
    setup_problem: bool = False  # a step could not run because of the host's or the bot's setup


@dataclass
class PassSummary:
    dry_run: bool = False
    tickets_found: int = 0
    tickets_handled: int = 0
    outcomes: list[TicketOutcome] = field(default_factory=list)
    glpi_requests: int = 0
    duration_s: float = 0.0
    exit_code: int = ExitCode.OK
    error: str | None = None

    def count(self, outcome: str) -> int:
        return sum(1 for item in self.outcomes if item.outcome == outcome)

    def line(self) -> str:
        """Return the one-line summary logged at the end of every pass."""
        parts = [
            f"found={self.tickets_found}",
            f"skipped={self.count('skipped')}",
            f"solved={self.count('solved')}",
            f"pending={self.count('pending')}",
            f"errors={self.count('error')}",
            f"setup_problems={sum(1 for item in self.outcomes if item.setup_problem)}",
            f"not_reached={self.count('not_reached')}",
            f"glpi_requests={self.glpi_requests}",
            f"duration={self.duration_s:.2f}s",
            f"exit={int(self.exit_code)}",
        ]
        if self.dry_run:
            parts.insert(0, "dry-run")
        return "pass finished: " + " ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["exit_code"] = int(self.exit_code)
        return data


def glpi_error_text(exc: GlpiError) -> str:
    """Return the masked error message, led by the failed request ("GLPI POST /token: ...") when it does not name it."""
    text = redact(str(exc))
    request = f"{exc.method} {exc.path}" if exc.method and exc.path else ""
    if request and request not in text:
        text = f"GLPI {request}: {text}"
    return text


def build_client(config: Config, *, use_cache: bool = True) -> GlpiClient:
    """Create the GLPI client with the secrets from the environment or systemd credentials."""
    return GlpiClient(
        config.glpi,
        client_secret=read_secret(GLPI_CLIENT_SECRET) or "",
        password=read_secret(GLPI_PASSWORD) or "",
        token_cache=(config.state_dir / "token.json") if use_cache else None,
    )


def run_pass(
    config: Config,
    *,
    dry_run: bool = False,
    only_ticket: int | None = None,
    force: bool = False,
    client: GlpiClient | None = None,
    clock: Callable[[], float] = time.time,
) -> PassSummary:
    """Run one pass (or one ticket with `only_ticket`) and return its summary.

    GLPI failures end up in the summary's exit code; ConfigError (a missing
    secret) and LockHeldError propagate to the caller. `clock` returns the
    time in seconds since the epoch. The ledger's records, the retry backoff
    of failed writes and the age of stale temporary artifact files use it, so
    tests can pass a clock set ahead to make a retry due without waiting.
    """
    started = time.monotonic()
    summary = PassSummary(dry_run=dry_run)
    log.info("pass started%s", " (dry run)" if dry_run else "")
    try:
        if dry_run:
            _dry_run(config, summary, only_ticket, force, client)
        else:
            with PassLock(config.state_dir):
                _real_pass(config, summary, only_ticket, force, client, started, clock)
    except (GlpiAuthError, GlpiUnreachableError) as exc:
        summary.exit_code, summary.error = ExitCode.GLPI_UNAVAILABLE, glpi_error_text(exc)
    except GlpiError as exc:
        summary.exit_code, summary.error = ExitCode.TICKET_ERROR, glpi_error_text(exc)
    summary.duration_s = time.monotonic() - started
    if summary.error:
        log.error("pass stopped: %s", summary.error)
    log.info("%s", summary.line())
    return summary


def _real_pass(
    config: Config,
    summary: PassSummary,
    only_ticket: int | None,
    force: bool,
    client: GlpiClient | None,
    started: float,
    clock: Callable[[], float],
) -> None:
    client = client or build_client(config)
    memory_token = read_secret(MEMORY_TOKEN, required=config.memory.sink == "http")
    passphrase = read_secret(SSH_KEY_PASSPHRASE, required=False)
    try:
        _pass_with_client(config, summary, only_ticket, force, client, started, clock, memory_token, passphrase)
    finally:
        summary.glpi_requests = client.request_count


def _pass_with_client(
    config: Config,
    summary: PassSummary,
    only_ticket: int | None,
    force: bool,
    client: GlpiClient,
    started: float,
    clock: Callable[[], float],
    memory_token: str | None,
    passphrase: str | None,
) -> None:
    with _open_ledger(config, clock) as ledger:
        bot_user_id, category_id = _resolve_ids(config, client, ledger)
        effects = Effects(ledger, client, config, bot_user_id=bot_user_id, memory_token=memory_token)
        session = PassSession(
            config=config,
            client=client,
            ledger=ledger,
            renderer=Renderer(config.templates_dir),
            effects=effects,
            bot_user_id=bot_user_id,
            category_id=category_id,
            deadline=started + config.pass_timeout_s,
            ssh_key_passphrase=passphrase,
        )
        try:
            # A pass killed while writing an artifact leaves its temporary file; the lock keeps other passes out.
            remove_stale_temp_files(config.artifacts.dir, now=clock())
            effects.retry_due_local_effects()
            tickets = _candidates(session, only_ticket, force, summary)
            for ticket in tickets:
                if session.out_of_time():
                    summary.outcomes.append(TicketOutcome(int(ticket["id"]), "not_reached"))
                    log.warning("ticket %s not reached before the pass deadline; the next pass takes it", ticket["id"])
                    continue
                outcome = _handle_ticket(session, ticket)
                summary.outcomes.append(outcome)
                if outcome.outcome == "fatal":
                    break
        finally:
            session.close()
    summary.tickets_handled = sum(1 for item in summary.outcomes if item.outcome in ("solved", "pending"))
    # Setup problems and failed artifact or memory writes leave every ticket answered, but the
    # timer's exit status must still tell the operator that something needs fixing.
    if any(item.outcome in ("error", "fatal") or item.setup_problem for item in summary.outcomes):
        summary.exit_code = ExitCode.TICKET_ERROR
    if effects.local_failures:
        summary.exit_code = ExitCode.TICKET_ERROR
        failed = f"{effects.local_failures} artifact or memory write(s) failed; later passes retry them"
        summary.error = summary.error or failed
    fatal = [item for item in summary.outcomes if item.outcome == "fatal"]
    if fatal:
        summary.exit_code = ExitCode.GLPI_UNAVAILABLE
        summary.error = fatal[0].summary


def _open_ledger(config: Config, clock: Callable[[], float]) -> Ledger:
    """Open the ledger; a state folder that cannot hold it is a configuration error."""
    path = config.state_dir / "ledger.sqlite3"
    try:
        return Ledger(path, clock=clock)
    except (OSError, sqlite3.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"cannot open the ledger {path}: {reason}; state_dir must be a folder the bot user can write, "
            "and a ledger that is not a SQLite file must be moved away"
        ) from None


def _resolve_ids(config: Config, client: GlpiClient, ledger: Ledger) -> tuple[int, int]:
    """Return (bot user id, category id), from the ledger's cache after the first pass."""
    user_key = f"user_id:{config.glpi.url}:{config.glpi.username}"
    category_key = f"category_id:{config.glpi.url}:{config.glpi.category}"
    bot_user_id = ledger.cached(user_key)
    if bot_user_id is None:
        bot_user_id = client.user_id()
        ledger.cache(user_key, bot_user_id)
        log.info("resolved the bot user %s to id %d", config.glpi.username, bot_user_id)
    category_id = ledger.cached(category_key)
    if category_id is None:
        category_id = _lookup_category(config, client)
        ledger.cache(category_key, category_id)
        log.info("resolved the category %r to id %d", config.glpi.category, category_id)
    return int(bot_user_id), int(category_id)


def _lookup_category(config: Config, client: GlpiClient) -> int:
    """Return the configured category's id; a category GLPI does not have is a config error."""
    try:
        return client.category_id(config.glpi.category)
    except GlpiNotFoundError as exc:
        raise ConfigError(f"glpi.category: {exc}") from None


def _candidates(
    session: PassSession, only_ticket: int | None, force: bool, summary: PassSummary
) -> list[dict[str, Any]]:
    """Return the eligible tickets, plus any ticket whose attempt the ledger still has open."""
    config = session.config
    if only_ticket is not None:
        found = _one_ticket(session.client, only_ticket, summary)
    else:
        found = session.client.search_tickets(session.category_id, config.glpi.eligible_statuses)
    summary.tickets_found = len(found)

    chosen: dict[int, dict[str, Any]] = {}
    for ticket in found:
        ticket_id = int(ticket["id"])
        reason = ineligibility_reason(
            ticket,
            category_id=session.category_id,
            bot_user_id=session.bot_user_id,
            statuses=config.glpi.eligible_statuses,
            check_status=not force,
        )
        if reason is None:
            chosen[ticket_id] = ticket
            if force and status_id(ticket) not in config.glpi.eligible_statuses:
                log.warning(
                    "ticket %d: --force takes it in status %s; a finished attempt is run again as a new attempt, "
                    "state-changing steps included",
                    ticket_id,
                    status_id(ticket),
                )
            continue
        latest = session.ledger.latest_attempt(ticket_id)
        if latest is not None and latest.state == "open":
            continue  # the loop below resumes it
        summary.outcomes.append(TicketOutcome(ticket_id, "skipped", summary=reason))
        if only_ticket is not None:
            log.warning("ticket %d is not eligible: %s%s", ticket_id, reason, _force_hint(reason))
        else:
            log.debug("ticket %d skipped: %s", ticket_id, reason)

    for attempt in session.ledger.open_attempts():
        if only_ticket is not None and attempt.ticket_id != only_ticket:
            continue
        if attempt.ticket_id not in chosen:
            ticket = session.client.get_ticket(attempt.ticket_id)
            if not ticket.get("is_deleted"):
                chosen[attempt.ticket_id] = ticket
    return [chosen[ticket_id] for ticket_id in sorted(chosen)]


def _force_hint(reason: str) -> str:
    """Return how to take a ticket anyway when only its status keeps the bot from it."""
    if "status" not in reason:
        return ""
    return "; set it back to New in GLPI, or pass --force to run it in its current status"


def _one_ticket(client: GlpiClient, ticket_id: int, summary: PassSummary) -> list[dict[str, Any]]:
    """Return the one ticket `process-ticket` names, or [] with a usage error when GLPI has no such ticket."""
    try:
        return [client.get_ticket(ticket_id)]
    except GlpiNotFoundError:
        reason = f"ticket {ticket_id} not found in GLPI, or the bot user may not see it; check the id"
        summary.outcomes.append(TicketOutcome(ticket_id, "not_found", summary=reason))
        summary.exit_code = ExitCode.USAGE
        summary.error = reason
        return []


def _handle_ticket(session: PassSession, ticket: dict[str, Any]) -> TicketOutcome:
    """Carry one ticket through its lifecycle; turn every failure into an outcome for the summary."""
    ticket_id = int(ticket["id"])
    attempt = None
    with ticket_context(ticket_id):
        try:
            attempt = attempt_for(session, ticket)
            if attempt is None:
                return TicketOutcome(ticket_id, "pending", "recovered", "finished a status change lost with the ledger")
            report = TicketRun(session, ticket, attempt).process()
            setup = any(step.result is not None and step.result.config_problem for step in report.steps)
            if setup:
                log.error("a step could not run because of a setup problem: %s", report.summary)
            return TicketOutcome(ticket_id, report.outcome, report.kind, report.summary, setup_problem=setup)
        except PassDeadlineReached as exc:
            log.warning("%s", exc)
            return TicketOutcome(ticket_id, "not_reached", summary=str(exc))
        except (GlpiAuthError, GlpiUnreachableError) as exc:
            log.error("GLPI failed, stopping the pass: %s", glpi_error_text(exc))
            return TicketOutcome(ticket_id, "fatal", "glpi", glpi_error_text(exc))
        except GlpiError as exc:
            log.error("GLPI request failed; the next pass resumes this ticket: %s", glpi_error_text(exc))
            return TicketOutcome(ticket_id, "error", "glpi", glpi_error_text(exc))
        except (GlpibotError, OSError, sqlite3.Error) as exc:
            log.error("failed; the next pass resumes this ticket: %s", redact(str(exc)))
            return TicketOutcome(ticket_id, "error", "internal", redact(str(exc)))
        except Exception as exc:  # noqa: BLE001 - a bug in one ticket must neither stop the pass nor leave it silent
            text = redact(f"{type(exc).__name__}: {exc}")
            log.exception("internal error: %s", text)
            if attempt is not None:
                _answer_internal_error(session, ticket, attempt, text)
            return TicketOutcome(ticket_id, "error", "internal", text)


def _answer_internal_error(session: PassSession, ticket: dict[str, Any], attempt: Attempt, text: str) -> None:
    """Answer the ticket with an internal-error blocked follow-up and Pending, so it is not retried blindly."""
    problems = [f"internal error in glpibot: {text}", "the operator can find the traceback in the glpibot log"]
    try:
        TicketRun(session, ticket, attempt).finish_with_error(problems)
    except (GlpibotError, OSError, sqlite3.Error) as exc:
        log.error("could not post the internal-error follow-up; the next pass tries again: %s", redact(str(exc)))
    except Exception:  # noqa: BLE001 - the answer path itself is broken; the log keeps the traceback
        log.exception("could not post the internal-error follow-up; the next pass tries again")


def _dry_run(
    config: Config, summary: PassSummary, only_ticket: int | None, force: bool, client: GlpiClient | None
) -> None:
    """Report what a pass would do; write nothing to GLPI, the ledger, the artifacts or the memory sink."""
    client = client or build_client(config, use_cache=False)
    bot_user_id = client.user_id()
    category_id = _lookup_category(config, client)
    if only_ticket is not None:
        found = _one_ticket(client, only_ticket, summary)
    else:
        found = client.search_tickets(category_id, config.glpi.eligible_statuses)
    summary.tickets_found = len(found)
    for ticket in found:
        ticket_id = int(ticket["id"])
        reason = ineligibility_reason(
            ticket,
            category_id=category_id,
            bot_user_id=bot_user_id,
            statuses=config.glpi.eligible_statuses,
            check_status=not force,
        )
        if reason is not None:
            summary.outcomes.append(TicketOutcome(ticket_id, "skipped", summary=reason))
            if only_ticket is not None:
                log.warning("ticket %d is not eligible: %s", ticket_id, reason)
            continue
        with ticket_context(ticket_id):
            outcome, text = describe_plan(ticket, config)
            log.info("would %s: %s", outcome.replace("would_", ""), text)
        summary.outcomes.append(TicketOutcome(ticket_id, outcome, summary=text))
    summary.glpi_requests = client.request_count

