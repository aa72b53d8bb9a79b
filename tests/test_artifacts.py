"""Writing the Markdown artifact atomically and committing it with a real git in temporary repositories."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from glpibot.config import ArtifactSettings
from glpibot.outputs.artifacts import ArtifactError, remove_stale_temp_files, write_artifact
from glpibot.outputs.report import TicketReport
from glpibot.redact import forget_secrets, register_secret

MARKDOWN = "# Ticket 17: wiki\n\nAll good.\n"


def make_report(ticket_id: object = 17, *, attempt: int = 1, outcome: str = "solved") -> TicketReport:
    return TicketReport(
        ticket_id=ticket_id,  # type: ignore[arg-type]
        ticket_name="wiki",
        attempt=attempt,
        run_marker=f"glpibot-run {ticket_id}-{attempt}-a1b2c3",
        outcome=outcome,
    )


@pytest.fixture(autouse=True)
def git_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep git away from the user's and the system's configuration and from enclosing repositories."""
    global_config = tmp_path / "gitconfig"
    global_config.write_text("", encoding="utf-8")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(global_config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL", "GIT_DIR"):
        monkeypatch.delenv(name, raising=False)
    forget_secrets()
    yield
    forget_secrets()


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True)
    return result.stdout


def make_repo(path: Path) -> Path:
    """Create a repository with one commit made by a test identity given on the command line only."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("docs\n", encoding="utf-8")
    git(path, "add", "README.md")
    git(path, "-c", "user.name=Setup", "-c", "user.email=setup@example.test", "commit", "-q", "-m", "start")
    return path


def commit_count(repo: Path) -> int:
    return int(git(repo, "rev-list", "--count", "HEAD").strip())


def temp_files(directory: Path) -> list[Path]:
    return sorted(directory.glob(".ticket-*.tmp"))


def add_hook(repo: Path, body: str) -> None:
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\n" + body + "\n", encoding="utf-8")
    hook.chmod(0o755)


# Writing the file


def test_write_creates_dir_and_file(tmp_path: Path) -> None:
    directory = tmp_path / "docs" / "generated" / "glpi-bot"

    path = write_artifact(ArtifactSettings(dir=directory), make_report(), MARKDOWN)

    assert path == directory / "ticket-17.md"
    assert path.read_text(encoding="utf-8") == MARKDOWN
    assert temp_files(directory) == []


def test_write_file_readable(tmp_path: Path) -> None:
    path = write_artifact(ArtifactSettings(dir=tmp_path), make_report(), MARKDOWN)

    assert path.stat().st_mode & 0o777 == 0o644


def test_write_masks_secret(tmp_path: Path) -> None:
    register_secret("hunter2-secret")

    path = write_artifact(ArtifactSettings(dir=tmp_path), make_report(), "token hunter2-secret\n")

    assert path.read_text(encoding="utf-8") == "token [REDACTED]\n"


def test_same_content_not_rewritten(tmp_path: Path) -> None:
    path = write_artifact(ArtifactSettings(dir=tmp_path), make_report(), MARKDOWN)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    inode = path.stat().st_ino

    write_artifact(ArtifactSettings(dir=tmp_path), make_report(), MARKDOWN)

    assert path.stat().st_mtime_ns == 1_000_000_000
    assert path.stat().st_ino == inode


def test_changed_content_replaced(tmp_path: Path) -> None:
    path = write_artifact(ArtifactSettings(dir=tmp_path), make_report(), MARKDOWN)

    write_artifact(ArtifactSettings(dir=tmp_path), make_report(attempt=2), "# second\n")

    assert path.read_text(encoding="utf-8") == "# second\n"
    assert temp_files(tmp_path) == []


@pytest.mark.parametrize("ticket_id", [0, -3, "17", "../x", True, 17.0])
def test_invalid_ticket_id(tmp_path: Path, ticket_id: object) -> None:
    with pytest.raises(ArtifactError, match="invalid ticket id"):
        write_artifact(ArtifactSettings(dir=tmp_path), make_report(ticket_id), MARKDOWN)

    assert list(tmp_path.iterdir()) == [tmp_path / "gitconfig"]


def test_dir_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "plain-file"
    blocker.write_text("x", encoding="utf-8")

    with pytest.raises(ArtifactError, match="cannot create artifact directory"):
        write_artifact(ArtifactSettings(dir=blocker / "artifacts"), make_report(), MARKDOWN)


def test_existing_path_is_dir(tmp_path: Path) -> None:
    (tmp_path / "ticket-17.md").mkdir()

    with pytest.raises(ArtifactError, match="cannot read existing artifact"):
        write_artifact(ArtifactSettings(dir=tmp_path), make_report(), MARKDOWN)

    assert temp_files(tmp_path) == []


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), RuntimeError("interrupted")])
def test_failed_replace_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    # A full disk cannot be produced on demand, so the rename fails by substitution.
    path = write_artifact(ArtifactSettings(dir=tmp_path), make_report(), MARKDOWN)

    def failing_replace(source: str, target: object) -> None:
        assert Path(source).read_text(encoding="utf-8") == "# new\n"
        raise failure

    monkeypatch.setattr(os, "replace", failing_replace)
    expected = ArtifactError if isinstance(failure, OSError) else RuntimeError
    with pytest.raises(expected, match="No space left|interrupted"):
        write_artifact(ArtifactSettings(dir=tmp_path), make_report(), "# new\n")

    assert temp_files(tmp_path) == []
    assert path.read_text(encoding="utf-8") == MARKDOWN


# Stale temporary files


def test_stale_temp_removed(tmp_path: Path) -> None:
    stale = tmp_path / ".ticket-abc.tmp"
    fresh = tmp_path / ".ticket-def.tmp"
    other = tmp_path / "ticket-3.md"
    for path in (stale, fresh, other):
        path.write_text("x", encoding="utf-8")
    old = time.time() - 120
    os.utime(stale, (old, old))
    os.utime(other, (old, old))

    removed = remove_stale_temp_files(tmp_path)

    assert removed == 1
    assert not stale.exists()
    assert fresh.exists()
    assert other.exists()


def test_stale_temp_missing_dir(tmp_path: Path) -> None:
    assert remove_stale_temp_files(tmp_path / "absent") == 0


# Committing with git


def test_commit_only_the_artifact(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "docs")
    (repo / "other.md").write_text("staged by a person\n", encoding="utf-8")
    git(repo, "add", "other.md")
    directory = repo / "generated"

    write_artifact(ArtifactSettings(dir=directory, git_commit=True), make_report(), MARKDOWN)

    assert git(repo, "log", "-1", "--format=%s").strip() == "glpibot: ticket 17 attempt 1 solved"
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["generated/ticket-17.md"]
    assert git(repo, "diff", "--cached", "--name-only").split() == ["other.md"]
    assert git(repo, "status", "--porcelain", "--", "generated").strip() == ""


def test_commit_fallback_identity(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "docs")

    write_artifact(ArtifactSettings(dir=repo, git_commit=True), make_report(), MARKDOWN)

    assert git(repo, "log", "-1", "--format=%an <%ae>").strip() == "glpibot <glpibot@localhost>"


def test_commit_configured_identity(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "docs")
    git(repo, "config", "user.name", "Docs Bot")
    git(repo, "config", "user.email", "docs@example.test")

    write_artifact(ArtifactSettings(dir=repo, git_commit=True), make_report(), MARKDOWN)

    assert git(repo, "log", "-1", "--format=%an <%ae>").strip() == "Docs Bot <docs@example.test>"


def test_unchanged_artifact_no_commit(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "docs")
    settings = ArtifactSettings(dir=repo, git_commit=True)
    write_artifact(settings, make_report(), MARKDOWN)
    before = commit_count(repo)

    write_artifact(settings, make_report(), MARKDOWN)

    assert commit_count(repo) == before


def test_changed_artifact_new_commit(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "docs")
    settings = ArtifactSettings(dir=repo, git_commit=True)
    write_artifact(settings, make_report(), MARKDOWN)

    write_artifact(settings, make_report(attempt=2, outcome="pending"), "# attempt 2\n")

    assert commit_count(repo) == 3
    assert git(repo, "log", "-1", "--format=%s").strip() == "glpibot: ticket 17 attempt 2 pending"


def test_uncommitted_file_committed_later(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "docs")
    write_artifact(ArtifactSettings(dir=repo), make_report(), MARKDOWN)
    assert commit_count(repo) == 1

    write_artifact(ArtifactSettings(dir=repo, git_commit=True), make_report(), MARKDOWN)

    assert commit_count(repo) == 2
    assert git(repo, "show", "HEAD:ticket-17.md") == MARKDOWN


def test_outside_work_tree(tmp_path: Path) -> None:
    directory = tmp_path / "plain"

    with pytest.raises(ArtifactError, match="not inside a git work tree"):
        write_artifact(ArtifactSettings(dir=directory, git_commit=True), make_report(), MARKDOWN)

    assert not (directory / "ticket-17.md").exists()


def test_git_failure_redacted(tmp_path: Path) -> None:
    register_secret("hook-secret-value")
    repo = make_repo(tmp_path / "docs")
    add_hook(repo, "echo 'rejected by policy, token hook-secret-value' >&2\nexit 1")

    with pytest.raises(ArtifactError) as caught:
        write_artifact(ArtifactSettings(dir=repo, git_commit=True), make_report(), MARKDOWN)

    message = str(caught.value)
    assert "git commit" in message
    assert "rejected by policy" in message
    assert "[REDACTED]" in message
    assert "hook-secret-value" not in message


def test_git_hang_times_out(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "docs")
    add_hook(repo, "sleep 60")
    started = time.monotonic()

    with pytest.raises(ArtifactError, match="timed out after 1 s"):
        write_artifact(ArtifactSettings(dir=repo, git_commit=True), make_report(), MARKDOWN, git_timeout_s=1)

    assert time.monotonic() - started < 30  # generous bound: only detects a hang
