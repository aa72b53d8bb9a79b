"""The contract every trusted action implements."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from glpibot.errors import SpecIssue

if TYPE_CHECKING:
    from glpibot.config import Config
    from glpibot.remote.pool import SshPool
    from glpibot.spec.model import Step


@dataclass
class StepResult:
    """What one step did.

    `summary` is one line for people ("nginx.service is active").
    `facts` holds structured values for the artifact and memory record.
    `output` is raw text from the target (remote stdout/stderr, HTTP body
    excerpt); renderers escape and cap it, it is never trusted.
    """

    ok: bool
    summary: str
    facts: dict[str, Any] = field(default_factory=dict)
    output: str = ""
    duration_s: float = 0.0
    # True when the failure is a setup problem on the operator's side (sudo
    # needs a password, unknown host key) rather than the target being down.
    config_problem: bool = False
    timed_out: bool = False


@dataclass
class ActionContext:
    """Everything a step may use while it runs; tests pass their own."""

    config: "Config"
    ssh: "SshPool | None" = None
    deadline: float | None = None  # time.monotonic() value the step must finish by
    ticket_id: int | None = None

    def remaining_s(self, default: float) -> float:
        """Return the seconds left before the deadline, at most `default`."""
        if self.deadline is None:
            return default
        return max(0.0, min(default, self.deadline - time.monotonic()))


class Action(ABC):
    """A trusted built-in action. Ticket text only ever reaches it as validated params."""

    name: str
    description: str
    runs_on: str  # "runner" or "ssh"

    def changes_state(self, params: dict[str, Any]) -> bool:
        """Return True when running these params may change the target's state."""
        return False

    def param_names(self) -> list[str]:
        """Return the parameter names of the action's params schema."""
        from glpibot.resources import load_action_schema

        return sorted(load_action_schema(self.name).get("properties", {}))

    @abstractmethod
    def check_policy(self, step: "Step", config: "Config") -> list[SpecIssue]:
        """Return every reason the operator's configuration refuses this step; [] when allowed.

        Runs before any connection is opened, so it must not touch the network.
        """

    @abstractmethod
    def run(self, step: "Step", context: ActionContext) -> StepResult:
        """Run the step and return its result; expected failures become ok=False, not exceptions."""
