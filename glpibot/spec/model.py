"""The validated spec: the steps a ticket requests glpibot to run."""

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
    # 1-based YAML line of each key inside the step, by its path relative to the
    # step ("host", "params.url", "params.services[0]"). The field is left out of
    # ==, so a Step built by hand still equals the parsed one.
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def line_of(self, key: str) -> int | None:
        """Return the line of `key` (for example "params.url"), else the step's own line.

        A mapping entry has the line of its key and a list item the line where
        the item starts. A key the spec does not contain gets the step's line.
        """
        return self.lines.get(key, self.line)


@dataclass(frozen=True)
class Spec:
    """A whole spec: version, reason and the ordered steps."""

    version: int
    steps: list[Step]
    reason: str | None = None
    source: str = field(default="", repr=False)  # the YAML text the spec came from
