"""Fault injection for the GLPI simulator: which requests a fault hits and what it does to them."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Fault:
    """One injected fault.

    `method` and `path` select requests (None matches any). `path` is a
    regular expression searched in the request path without the `/api.php`
    and version prefixes, for example `^/Assistance/Ticket/\\d+$` or `/token`.
    The fault hits matching requests number `nth` to `nth + times - 1`,
    counted from the moment it was added (`times=-1`: every one from `nth` on).

    Effects apply in this order. `hold` blocks until the event is set (at
    most 120 s, and never past the simulator's stop). With
    `hold_after_apply` the request is handled first and the hold comes
    before the response is sent, so the write happened but the client has
    no response yet. `reached`, when given, is set as the request reaches the
    hold (or, without a hold, as the fault hits it), so a test can wait for
    that moment. `delay_s` sleeps.
    `drop` closes the connection with a reset and no response.
    `unauthorized` returns a 401 as for an invalid token. `status`/`body`
    respond with that status instead of handling the request. With
    `apply_then_fail` the request is handled first and the response is then
    replaced by `status`/`body`, so the write happened but the client sees an
    error. `ignore_status_change` makes a PATCH keep the ticket status and
    still return 200, as GLPI does when the profile lacks the right; on a
    Solution POST it stores the solution but leaves the status as it was.
    `trickle_s` spreads the sending of the response, byte by byte, over that
    many seconds.
    """

    method: str | None = None
    path: str | None = None
    nth: int = 1
    times: int = 1
    status: int | None = None
    body: Any = None  # JSON-serialisable value, or str/bytes sent as is; None: empty body
    delay_s: float = 0.0
    drop: bool = False
    trickle_s: float = 0.0
    apply_then_fail: bool = False
    ignore_status_change: bool = False
    hold: threading.Event | None = None
    hold_after_apply: bool = False
    reached: threading.Event | None = None
    unauthorized: bool = False
    seen: int = field(default=0, init=False, repr=False)  # matching requests so far

    def __post_init__(self) -> None:
        if self.nth < 1:
            raise ValueError(f"Fault.nth must be 1 or more, got {self.nth}")
        if self.times == 0 or self.times < -1:
            raise ValueError(f"Fault.times must be -1 (forever) or 1 or more, got {self.times}")
        if self.apply_then_fail and self.status is None:
            raise ValueError("Fault.apply_then_fail needs a status to respond with")
        if self.hold_after_apply and self.hold is None:
            raise ValueError("Fault.hold_after_apply needs a hold event to wait on")
        self._path_pattern = re.compile(self.path) if self.path is not None else None

    def matches(self, method: str, path: str) -> bool:
        """Return True when the request is one this fault selects."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self._path_pattern is None or self._path_pattern.search(path) is not None

    def take(self) -> bool:
        """Count one matching request; return True when the fault hits it."""
        self.seen += 1
        if self.seen < self.nth:
            return False
        return self.times == -1 or self.seen < self.nth + self.times


class FaultSet:
    """The faults of one simulator; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            fault.seen = 0
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def select(self, method: str, path: str) -> list[Fault]:
        """Return the faults that hit this request; every matching fault counts it."""
        hits = []
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path) and fault.take():
                    hits.append(fault)
        return hits
