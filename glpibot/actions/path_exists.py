"""path_exists: check over SFTP (lstat, no shell) that an allowlisted path exists on a host.

Symbolic links are never followed: the path itself is lstat'ed, so a link
is reported as a link. Every directory between the allowlist glob's fixed
prefix and the path is lstat'ed too, because SFTP resolves links in the
middle of a path: `/srv/link/shadow` with `/srv/link -> /etc` would
otherwise report on `/etc/shadow` while matching `/srv/**`.
"""

from __future__ import annotations

import logging
import posixpath
from typing import TYPE_CHECKING, Any

from glpibot.actions.base import Action, ActionContext, StepResult
from glpibot.actions.remote_common import StepFailed, policy_refusal, run_on_host
from glpibot.actions.remote_policy import (
    check_remote_path,
    first_match,
    glob_literal_prefix,
    host_globs,
    param_path,
    remote_step_issues,
    show_value,
)
from glpibot.errors import RemoteError, SpecIssue

if TYPE_CHECKING:
    from glpibot.config import Config
    from glpibot.remote.session import RemoteSession, RemoteStat
    from glpibot.spec.model import Step

logger = logging.getLogger(__name__)

KIND_WORDS = {"file": "a file", "directory": "a directory", "symlink": "a symbolic link", "other": "a special file"}


def ancestors_below(prefix: str, path: str) -> list[str]:
    """Return the directories strictly between `prefix` and `path`, outermost first.

    `ancestors_below("/srv", "/srv/a/b/c")` is `["/srv/a", "/srv/a/b"]`.
    """
    result: list[str] = []
    current = posixpath.dirname(path)
    while current != prefix and current.startswith(prefix.rstrip("/") + "/"):
        result.append(current)
        current = posixpath.dirname(current)
    return list(reversed(result))


def stat_facts(stat: "RemoteStat") -> dict[str, Any]:
    """Return the reported fields of one lstat."""
    return {
        "type": stat.kind,
        "size": stat.size,
        "mode": stat.mode,
        "uid": stat.uid,
        "gid": stat.gid,
        "mtime": stat.mtime,
    }


class PathExists(Action):
    """Check that a path exists, optionally that it is a file or a directory."""

    name = "path_exists"
    description = "Check over SFTP that an allowlisted path exists on a host (links reported, not followed)."
    runs_on = "ssh"

    def changes_state(self, params: dict[str, Any]) -> bool:
        """Return False: an lstat changes nothing."""
        return False

    def check_policy(self, step: "Step", config: "Config") -> list[SpecIssue]:
        """Return an issue for a malformed path or one outside the host's allowed globs."""
        issues = remote_step_issues(step, self.name)
        if issues:
            return issues
        normalised, problem = check_remote_path(step.params.get("path"))
        if problem or normalised is None:
            return [SpecIssue(param_path(step, "path"), problem or "invalid path", step.line_of("params.path"))]
        globs = host_globs(config, self.name, "allowed_paths", step.host)
        if first_match(globs, normalised) is None:
            return [
                SpecIssue(
                    param_path(step, "path"),
                    f"path {show_value(normalised)} is outside actions.path_exists.allowed_paths.{step.host}; "
                    f"add a glob that matches it there to allow it",
                    step.line_of("params.path"),
                )
            ]
        return []

    def run(self, step: "Step", context: ActionContext) -> StepResult:
        """Lstat the path and every directory below the allowed prefix; check the kind."""
        refused = policy_refusal(self.check_policy(step, context.config))
        if refused is not None:
            return refused
        host = context.config.hosts[str(step.host)]
        raw = str(step.params["path"])
        normalised, problem = check_remote_path(raw)
        if normalised is None:
            return StepResult(ok=False, summary=f"refused by policy: {problem}")
        kind = str(step.params.get("kind", "any"))
        glob = first_match(host_globs(context.config, self.name, "allowed_paths", host.name), normalised)
        prefix = glob_literal_prefix(glob or "/")
        facts: dict[str, Any] = {"host": host.name, "path": normalised, "expected_kind": kind}
        if normalised != raw:
            facts["normalised_from"] = raw
        result = run_on_host(context, host, facts, lambda session, clock: self._run(session, normalised, kind, prefix, host.name))
        logger.info("ticket %s: path %s on %s: %s", context.ticket_id, normalised, host.name, result.summary)
        return result

    def _run(self, session: "RemoteSession", path: str, kind: str, prefix: str, host: str) -> StepResult:
        for directory in ancestors_below(prefix, path):
            parent = _lstat(session, directory, host)
            if parent is None:
                return StepResult(ok=False, summary=f"path {path} does not exist on {host} ({directory} is missing)")
            if parent.kind == "symlink":
                summary = (
                    f"path {path} goes through the symbolic link {directory} on {host}; "
                    f"links below {prefix} are not followed"
                )
                return StepResult(ok=False, summary=summary, facts={"symlink": directory})
            if parent.kind != "directory":
                word = KIND_WORDS.get(parent.kind, parent.kind)
                return StepResult(ok=False, summary=f"path {path} does not exist on {host} ({directory} is {word})")

        stat = _lstat(session, path, host)
        if stat is None:
            return StepResult(ok=False, summary=f"path {path} does not exist on {host}")
        facts = stat_facts(stat)
        word = KIND_WORDS.get(stat.kind, stat.kind)
        details = f"{word}, {stat.size} bytes, mode {stat.mode}, uid {stat.uid}, gid {stat.gid}, modified {stat.mtime}"
        if kind != "any" and stat.kind != kind:
            summary = f"path {path} on {host} is {word}, expected {KIND_WORDS[kind]}"
            if stat.kind == "symlink":
                summary += " (symbolic links are not followed)"
            return StepResult(ok=False, summary=summary, facts=facts)
        return StepResult(ok=True, summary=f"path {path} exists on {host} ({details})", facts=facts)


def _lstat(session: "RemoteSession", path: str, host: str) -> "RemoteStat | None":
    try:
        return session.stat(path)
    except RemoteError as exc:
        raise StepFailed(StepResult(ok=False, summary=f"cannot check path {path} on {host}: {exc}")) from None
