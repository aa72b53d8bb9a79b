"""Write the per-ticket Markdown artifact atomically, and commit it with git when configured."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from glpibot.config import ArtifactSettings
from glpibot.errors import GlpibotError
from glpibot.outputs.report import TicketReport
from glpibot.redact import redact

logger = logging.getLogger(__name__)

TEMP_PREFIX = ".ticket-"
TEMP_SUFFIX = ".tmp"
STALE_TEMP_AGE_S = 60.0
DEFAULT_FILE_MODE = 0o644  # the documentation site and other users read the artifact
_FALLBACK_IDENTITY = {"user.name": "glpibot", "user.email": "glpibot@localhost"}


class ArtifactError(GlpibotError):
    """Failure to write or commit the artifact."""


def artifact_name(ticket_id: int) -> str:
    """Return the artifact's file name, built from the integer ticket id only."""
    if isinstance(ticket_id, bool) or not isinstance(ticket_id, int) or ticket_id <= 0:
        raise ArtifactError(f"invalid ticket id {ticket_id!r} for an artifact file name; expected a positive integer")
    return f"ticket-{ticket_id}.md"


def write_artifact(
    settings: ArtifactSettings, report: TicketReport, markdown: str, *, git_timeout_s: float = 30
) -> Path:
    """Write `ticket-<id>.md` in the artifact directory and return its path.

    The file is replaced atomically, so readers see the old or the new text,
    never half of it. When the text equals the file's, nothing is written.
    With `git_commit`, the file alone is committed whenever git shows it
    changed or untracked, which also catches up a commit that an earlier
    pass wrote the file for but did not finish.
    """
    directory = settings.dir
    path = directory / artifact_name(report.ticket_id)
    data = redact(markdown).encode("utf-8")

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactError(
            f"cannot create artifact directory {directory}: {exc.strerror}; "
            "create it or fix artifacts.dir in the config"
        ) from None
    if settings.git_commit:
        _require_work_tree(directory, git_timeout_s)

    if _read_existing(path) == data:
        logger.info("ticket %s: artifact %s unchanged", report.ticket_id, path)
    else:
        _replace_atomically(path, data)
        logger.info("ticket %s: artifact written to %s", report.ticket_id, path)

    if settings.git_commit:
        _commit(directory, path.name, report, git_timeout_s)
    return path


def _read_existing(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ArtifactError(f"cannot read existing artifact {path}: {exc.strerror}") from None


def _replace_atomically(path: Path, data: bytes) -> None:
    directory = path.parent
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = DEFAULT_FILE_MODE
    temp_name: str | None = None
    try:
        with tempfile.NamedTemporaryFile(dir=directory, delete=False, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX) as handle:
            temp_name = handle.name
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
        temp_name = None
        _fsync_directory(directory)
    except OSError as exc:
        raise ArtifactError(f"cannot write artifact {path}: {exc.strerror or exc}") from None
    finally:
        if temp_name is not None:
            _unlink_quietly(Path(temp_name))


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable, not only the file's content.
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("cannot remove temporary file %s: %s", path, exc.strerror)


def remove_stale_temp_files(directory: Path, *, max_age_s: float = STALE_TEMP_AGE_S, now: float | None = None) -> int:
    """Remove `.ticket-*.tmp` files older than `max_age_s` seconds, which a crashed pass left, and return the count.

    `now` is the current time in seconds since the epoch (default: time.time()).
    """
    removed = 0
    now = time.time() if now is None else now
    try:
        candidates = list(directory.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"))
    except OSError:
        return 0
    for candidate in candidates:
        try:
            info = candidate.lstat()
        except FileNotFoundError:
            continue
        if now - info.st_mtime <= max_age_s:
            continue
        logger.info("removing stale temporary artifact file %s", candidate)
        _unlink_quietly(candidate)
        if not candidate.exists():
            removed += 1
    return removed


def _run_git(directory: Path, args: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run git in `directory`. On timeout, kill git and every process it started, hooks included."""
    argv = ["git", "-C", str(directory), *args]
    environment = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
            start_new_session=True,
        )
    except OSError as exc:
        raise ArtifactError(f"cannot run git for the artifact commit: {exc.strerror}; install git") from None
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise ArtifactError(f"git {_subcommand(args)} in {directory} timed out after {timeout_s:g} s") from None
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def _subcommand(args: list[str]) -> str:
    # Skips `-c key=value` options placed before the subcommand.
    return next((arg for arg in args if not arg.startswith("-") and "=" not in arg), "")


def _git_checked(directory: Path, args: list[str], timeout_s: float) -> str:
    result = _run_git(directory, args, timeout_s)
    if result.returncode != 0:
        detail = redact(result.stderr.strip() or result.stdout.strip())[:2000]
        raise ArtifactError(f"git {_subcommand(args)} in {directory} failed with exit status {result.returncode}: {detail}")
    return result.stdout


def _require_work_tree(directory: Path, timeout_s: float) -> None:
    result = _run_git(directory, ["rev-parse", "--show-toplevel"], timeout_s)
    if result.returncode != 0:
        raise ArtifactError(
            f"artifacts.git_commit is true but {directory} is not inside a git work tree; "
            "run git init there, point artifacts.dir into a clone, or set git_commit to false"
        )


def _identity_options(directory: Path, timeout_s: float) -> list[str]:
    # The fallback identity only fills in what git's own configuration lacks.
    options: list[str] = []
    for key, value in _FALLBACK_IDENTITY.items():
        configured = _run_git(directory, ["config", key], timeout_s)
        if configured.returncode != 0 or not configured.stdout.strip():
            options += ["-c", f"{key}={value}"]
    return options


def _commit(directory: Path, name: str, report: TicketReport, timeout_s: float) -> None:
    status = _git_checked(directory, ["status", "--porcelain", "--untracked-files=all", "--", name], timeout_s)
    if not status.strip():
        logger.info("ticket %s: artifact %s already committed", report.ticket_id, name)
        return
    _git_checked(directory, ["add", "--", name], timeout_s)
    message = f"glpibot: ticket {report.ticket_id} attempt {report.attempt} {report.outcome}"
    # `--only` with a pathspec commits this file alone and leaves other staged changes staged.
    commit_args = [*_identity_options(directory, timeout_s), "commit", "--quiet", "--only", "-m", message, "--", name]
    _git_checked(directory, commit_args, timeout_s)
    logger.info("ticket %s: artifact %s committed", report.ticket_id, name)
