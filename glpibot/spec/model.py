"""The validated spec: what a ticket asks glpibot to run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Step:
    """One action to run, as the spec author wrote it after validation."""

    index: int  # 0-based position in `steps`; 0 for a single-action spec
    action: str
    params: dict[str, Any]
    host: str | None = None
    path: str = ""  # where the step sits in the spec: "steps[1]", or "" for a single action
    line: int | None = None  # 1-based YAML line of the step


@dataclass(frozen=True)
class Spec:
    """A whole spec: version, reason and the ordered steps."""

    version: int
    steps: list[Step]
    reason: str | None = None
    source: str = field(default="", repr=False)  # the YAML text the spec came from
