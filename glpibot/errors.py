"""The error taxonomy: every error glpibot raises on purpose derives from GlpibotError."""

from __future__ import annotations

from dataclasses import dataclass


class GlpibotError(Exception):
    """Base of every error that glpibot raises on purpose."""


class ConfigError(GlpibotError):
    """The configuration file, a secret or the environment is invalid."""


class LockHeldError(GlpibotError):
    """Another pass holds the lock in the state directory."""


@dataclass(frozen=True)
class SpecIssue:
    """One problem found in a spec: where it is and what is wrong.

    `path` uses the spec's own shape, for example `steps[1].params.url`
    (empty for the document itself); `line` is 1-based in the YAML text.
    """

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.path or "(spec)"
        if self.line is not None:
            where = f"{where} (line {self.line})"
        return f"{where}: {self.message}"


class SpecError(GlpibotError):
    """A spec is missing, malformed or refused by policy; carries every issue at once."""

    def __init__(self, issues: list[SpecIssue], *, kind: str = "invalid") -> None:
        self.issues = list(issues)
        # kind is "missing" (no spec in the body), "invalid" (shape or YAML)
        # or "policy" (valid, but the operator's configuration does not allow it).
        self.kind = kind
        super().__init__("; ".join(str(issue) for issue in self.issues) or "invalid spec")


class GlpiError(GlpibotError):
    """A GLPI request failed; carries GLPI's error body, never the token."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        http_status: int | None = None,
        error_code: str | None = None,
        title: str | None = None,
        detail: object = None,
    ) -> None:
        self.method = method
        self.path = path
        self.http_status = http_status
        self.error_code = error_code
        self.title = title
        self.detail = detail
        super().__init__(message)


class GlpiUnreachableError(GlpiError):
    """GLPI could not be reached: connection refused, reset or timed out."""


class GlpiAuthError(GlpiError):
    """GLPI rejected the bot's credentials or its token could not be renewed."""


class GlpiNotFoundError(GlpiError):
    """GLPI has no such item, or the bot user may not see it (GLPI returns 404 for both)."""


class GlpiStatusNotChangedError(GlpiError):
    """GLPI returned success for a status change but the ticket kept its old status."""


class RemoteError(GlpibotError):
    """An SSH connection or remote command could not be set up or run."""


class HostKeyError(RemoteError):
    """A host's key is unknown or does not match its known_hosts entry."""
