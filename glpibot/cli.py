"""The command line: it parses options, calls the library and maps outcomes to exit codes."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from glpibot import __version__
from glpibot.config import Config, load_config
from glpibot.errors import ConfigError, LockHeldError
from glpibot.exitcodes import ExitCode
from glpibot.logs import setup_logging
from glpibot.redact import redact, redact_data

log = logging.getLogger("glpibot")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Turn GLPI helpdesk tickets into safe, audited automation.",
    # A traceback with local variables would print the secrets that locals hold. Typer 0.12 shows them by default.
    pretty_exceptions_show_locals=False,
)

ConfigOption = typer.Option(
    None,
    "--config",
    "-c",
    help="Config file (YAML). Default: $GLPIBOT_CONFIG, else /etc/glpibot/config.yaml.",
    show_default=False,
)
DebugOption = typer.Option(False, "--debug", help="Log requests and SSH commands (secrets masked), with tracebacks.")


def _print_json(data: object) -> None:
    typer.echo(json.dumps(redact_data(data), indent=2, sort_keys=True, default=str))


def _fail(code: ExitCode, message: str, *, json_output: bool = False) -> None:
    """Print the error on stderr (and as JSON on stdout with --json), then exit with `code`."""
    typer.echo(f"glpibot: {redact(message)}", err=True)
    if json_output:
        _print_json({"error": message, "exit_code": int(code)})
    raise typer.Exit(int(code))


def _load(config_path: Optional[Path], *, json_output: bool = False) -> Config:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        _fail(ExitCode.USAGE, str(exc), json_output=json_output)
        raise  # unreachable: _fail always raises


def _run(config_path: Optional[Path], debug: bool, json_output: bool, **pass_options: object) -> None:
    from glpibot.workflow.pass_runner import run_pass

    setup_logging(logging.DEBUG if debug else logging.INFO)
    config = _load(config_path, json_output=json_output)
    try:
        summary = run_pass(config, **pass_options)  # type: ignore[arg-type]
    except ConfigError as exc:
        _fail(ExitCode.USAGE, str(exc), json_output=json_output)
    except LockHeldError as exc:
        _fail(ExitCode.LOCKED, str(exc), json_output=json_output)
    if json_output:
        _print_json(summary.as_dict())
    elif summary.dry_run:
        for outcome in summary.outcomes:
            action = outcome.outcome.replace("_", " ")
            typer.echo(redact(f"ticket {outcome.ticket_id}: {action}: {outcome.summary}"))
    if summary.error:
        typer.echo(f"glpibot: {redact(summary.error)}", err=True)
    raise typer.Exit(int(summary.exit_code))


@app.command()
def poll(
    config: Optional[Path] = ConfigOption,
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what the pass would do and change nothing."),
    json_output: bool = typer.Option(False, "--json", help="Print the pass summary as JSON on stdout."),
    debug: bool = DebugOption,
) -> None:
    """Run one pass over the eligible tickets, then exit."""
    _run(config, debug, json_output, dry_run=dry_run)


@app.command("process-ticket")
def process_ticket(
    ticket_id: int = typer.Argument(..., min=1, help="GLPI ticket id."),
    config: Optional[Path] = ConfigOption,
    force: bool = typer.Option(False, "--force", help="Skip the status check (category and assignment are still checked)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would happen and change nothing."),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    debug: bool = DebugOption,
) -> None:
    """Run the lifecycle for one ticket, with the same eligibility checks as poll."""
    _run(config, debug, json_output, dry_run=dry_run, only_ticket=ticket_id, force=force)


@app.command("validate-spec")
def validate_spec(
    file: str = typer.Argument(..., help="A YAML spec or a ticket body in HTML; '-' reads standard input."),
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="Also check the operator's policy (hosts, allowlists) from this config file."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Check a spec and print every error with its path and line; exit 0 when valid, 1 when not."""
    from glpibot.spec.validate import validate_text

    text = _read_input(file, json_output=json_output)
    loaded = _load(config, json_output=json_output) if config else None
    issues = validate_text(text, loaded)
    if json_output:
        _print_json(
            {
                "valid": not issues,
                "errors": [{"path": issue.path, "line": issue.line, "message": issue.message} for issue in issues],
            }
        )
    elif issues:
        for issue in issues:
            typer.echo(redact(str(issue)))
        typer.echo(f"{len(issues)} error(s); the spec is invalid", err=True)
    else:
        typer.echo("the spec is valid")
    raise typer.Exit(1 if issues else 0)


def _read_input(file: str, *, json_output: bool = False) -> str:
    max_bytes = 1024 * 1024
    try:
        if file == "-":
            data = sys.stdin.buffer.read(max_bytes + 1)
        else:
            with open(file, "rb") as handle:
                data = handle.read(max_bytes + 1)
    except OSError as exc:
        _fail(ExitCode.USAGE, f"cannot read {file}: {exc.strerror}", json_output=json_output)
    if len(data) > max_bytes:
        _fail(
            ExitCode.USAGE,
            f"{file} is larger than {max_bytes} bytes; a spec is a few lines of YAML",
            json_output=json_output,
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        _fail(ExitCode.USAGE, f"{file} is not valid UTF-8 (byte {exc.start}); save it as UTF-8", json_output=json_output)
    raise AssertionError("unreachable")


@app.command("list-actions")
def list_actions(json_output: bool = typer.Option(False, "--json", help="Print the actions as JSON.")) -> None:
    """List the trusted actions a spec can use, with their parameters."""
    from glpibot.actions.catalog import action_catalog

    catalog = action_catalog()
    if json_output:
        _print_json(catalog)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="glpibot actions", show_lines=True)
    for column in ("name", "what it does", "runs", "changes state", "parameters"):
        table.add_column(column)
    for entry in catalog:
        lines = ["(step) host*: a name from hosts in the config"] if entry["needs_host"] else []
        lines += [f"{param['name']}{'*' if param['required'] else ''}: {param['type']}" for param in entry["params"]]
        params = "\n".join(lines)
        table.add_row(entry["name"], entry["description"], entry["runs_on"], entry["changes_state"], params)
    console = Console(no_color=not sys.stdout.isatty(), width=None if sys.stdout.isatty() else 160)
    console.print(table)
    console.print("* required parameter")


@app.command()
def doctor(
    config: Optional[Path] = ConfigOption,
    json_output: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
) -> None:
    """Check the setup end to end (config, secrets, GLPI, directories, hosts); changes nothing."""
    from glpibot.doctor import run_checks

    loaded = _load(config, json_output=json_output)
    checks = run_checks(loaded)
    if json_output:
        _print_json([check.as_dict() for check in checks])
    else:
        for check in checks:
            typer.echo(redact(check.line()))
    raise typer.Exit(0 if all(check.ok for check in checks) else 1)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"glpibot {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
    ),
) -> None:
    """Turn GLPI helpdesk tickets into safe, audited automation."""


def main() -> None:
    """Entry point of the `glpibot` console script."""
    try:
        app(prog_name="glpibot")
    except KeyboardInterrupt:
        sys.exit(130)
