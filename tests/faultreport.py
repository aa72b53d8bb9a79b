"""Figures of a fault-matrix run, grouped by fault kind, as Markdown and JSON."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tests.faultkit import FAULT_KINDS, TIMEOUT_S, CellResult, pass_bound_s


def summarize(results: list[CellResult]) -> dict[str, Any]:
    """Group cell results by fault kind: exit codes, passes needed, the slowest pass and the violations."""
    rows = []
    for kind in FAULT_KINDS:
        cells = [cell for cell in results if cell.fault == kind.name]
        if not cells:
            continue
        rows.append(
            {
                "fault": kind.name,
                "description": kind.description,
                "cells": len(cells),
                "first_exit": dict(sorted(Counter(str(cell.exit_codes[0]) for cell in cells).items())),
                "passes_needed": dict(sorted(Counter(str(cell.passes_needed) for cell in cells).items())),
                "slowest_pass_s": max(max(cell.durations_s) for cell in cells),
                "checks_run": dict(sorted(Counter(str(cell.checks_run) for cell in cells).items())),
                "violations": sum(len(cell.violations) for cell in cells),
            }
        )
    return {
        "timeout_s": TIMEOUT_S,
        "pass_bound_s": pass_bound_s(),
        "cells": len(results),
        "violations": sum(len(cell.violations) for cell in results),
        "rows": rows,
        "results": [asdict(cell) for cell in results],
    }


def write_report(path: Path, results: list[CellResult], command: str) -> None:
    """Write the figures as Markdown at `path` and as JSON beside it (`path` + ".json")."""
    figures = summarize(results)
    lines = [
        f"Cells run: {figures['cells']}; invariant violations: {figures['violations']}; "
        f"glpi.timeout_s = {figures['timeout_s']:g} s; hang bound per pass = {figures['pass_bound_s']:g} s.",
        "",
        f"Reproduce with: `{command}`",
        "",
        "Counts read `value: cells`; check requests are those the read-only http_check steps sent "
        "over all passes of a cell (2 in the clean pass).",
        "",
        "| fault | what the simulator does | cells | first-pass exit codes | passes needed | "
        "check requests | slowest pass (s) | violations |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in figures["rows"]:
        exits = _counts(row["first_exit"])
        passes = _counts(row["passes_needed"])
        checks = _counts(row["checks_run"])
        lines.append(
            f"| {row['fault']} | {row['description']} | {row['cells']} | {exits} | {passes} | {checks} | "
            f"{row['slowest_pass_s']:.2f} | {row['violations']} |"
        )
    failed = [cell for cell in results if cell.violations]
    if failed:
        lines += ["", "Violations:", ""]
        lines += [f"- {cell.fault} on {cell.request}: {'; '.join(cell.violations)}" for cell in failed]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    Path(f"{path}.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{value}: {cells}" for value, cells in counts.items())
