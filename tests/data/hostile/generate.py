"""Write the hostile-input corpus: one file per case and the manifest cases.json.

Run `python tests/data/hostile/generate.py` from the repository root to
rewrite the files and print the number of cases per category. With
`--check` it only compares the files on disk with what it would write, and
exits 1 when they differ. The cases themselves are in the hostile_*.py
modules next to this file.

Each manifest entry holds:
- id, category, file (`<id>.yaml` for a spec text, `<id>.html` for a ticket body);
- input: "spec" (parse_spec) or "body" (parse_ticket_body);
- encoding: "utf-8", or "bytes" for files that are not valid UTF-8. glpibot
  reads bytes text as a client would: decoded with errors="replace";
- kind: "missing", "invalid" or "policy" for the SpecError kind expected, or
  "accepted" when schema and policy both let the text through as data;
- path: the field path an issue must name ("" for the document), and for an
  accepted case the field whose value is checked;
- message: a substring of that issue's message; value: for an accepted case,
  the exact value the field keeps;
- limit: "body" or "yaml" for inputs over a size limit, which must be
  rejected before the HTML or YAML is parsed;
- pass_slice: true for the cases run through a whole pass against the GLPI simulator;
- note: why the expectation is what it is, where that is not obvious.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "cases.json"
CASE_SUFFIXES = (".yaml", ".html")


def load_cases() -> tuple[list[Any], dict[str, Any]]:
    """Import the case tables that sit next to this file (the folder is not a package)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import hostile_fields
    import hostile_injection
    import hostile_model
    import hostile_yaml

    cases = [*hostile_injection.cases(), *hostile_yaml.cases(), *hostile_fields.cases()]
    return cases, hostile_model.POLICY_CONFIG


def build() -> tuple[dict[str, bytes], dict[str, Any]]:
    """Return the bytes of every case file by name, and the manifest."""
    cases, policy_config = load_cases()
    files: dict[str, bytes] = {}
    entries: list[dict[str, Any]] = []
    for case in cases:
        entry = case.manifest_entry()
        if entry["file"] in files:
            raise ValueError(f"two cases share the id {case.id}")
        files[entry["file"]] = case.data()
        entries.append(entry)
    counts = Counter(entry["category"] for entry in entries)
    manifest = {
        "config": policy_config,
        "categories": dict(sorted(counts.items())),
        "cases": entries,
    }
    return files, manifest


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=1, ensure_ascii=True) + "\n").encode("ascii")


def stale_files(files: dict[str, bytes], manifest: dict[str, Any]) -> list[str]:
    """Return the names of files that are missing, different or no longer generated."""
    expected = dict(files)
    expected[MANIFEST.name] = manifest_bytes(manifest)
    stale = [name for name, data in expected.items() if not (HERE / name).is_file() or (HERE / name).read_bytes() != data]
    on_disk = {path.name for path in HERE.iterdir() if path.suffix in CASE_SUFFIXES}
    stale.extend(sorted(on_disk - set(expected)))
    return stale


def write(files: dict[str, bytes], manifest: dict[str, Any]) -> None:
    """Replace the case files and the manifest; files of removed cases are deleted."""
    for path in HERE.iterdir():
        if path.suffix in CASE_SUFFIXES and path.name not in files:
            path.unlink()
    for name, data in files.items():
        (HERE / name).write_bytes(data)
    MANIFEST.write_bytes(manifest_bytes(manifest))


def main(argv: list[str]) -> int:
    files, manifest = build()
    if "--check" in argv:
        stale = stale_files(files, manifest)
        for name in stale:
            print(f"out of date: {name}")
        return 1 if stale else 0
    write(files, manifest)
    for category, count in manifest["categories"].items():
        print(f"{category:<16} {count:>4}")
    print(f"{'total':<16} {len(manifest['cases']):>4}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
