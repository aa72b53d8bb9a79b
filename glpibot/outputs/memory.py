"""Build the memory record of one ticket attempt and store it in the configured sink.

Sinks: `none` stores nothing, `jsonl` appends one JSON line to a local file,
and `http` POSTs the record to the memory service. The JSON Lines sink skips a
record whose idempotency key is already in the file. The HTTP sink sends the
key in an `Idempotency-Key` header, so the service can drop a repeated POST.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, cast

import requests

from glpibot.config import MemorySettings
from glpibot.credentials import MEMORY_TOKEN
from glpibot.errors import GlpibotError
from glpibot.outputs.report import TicketReport
from glpibot.redact import MASK, redact, redact_data, register_secret

logger = logging.getLogger(__name__)

BODY_EXCERPT_CHARS = 300  # characters of an error response quoted in MemoryStoreError


class MemoryStoreError(GlpibotError):
    """Failure to store a memory record. The ticket's outcome does not depend on it."""


def memory_record(report: TicketReport) -> dict[str, Any]:
    """Return the JSON-ready memory record of one attempt, every string redacted.

    `outcome` is "solved" or "pending", and an attempt that never finished
    counts as pending. `actions` lists only the steps that ran.
    """
    actions = [
        {
            "action": step.action,
            "host": step.host,
            "ok": step.result.ok,
            "summary": step.result.summary,
        }
        for step in report.steps
        if step.result is not None
    ]
    record: dict[str, Any] = {
        "ticket_id": report.ticket_id,
        "ticket_name": report.ticket_name,
        "outcome": "solved" if report.outcome == "solved" else "pending",
        "kind": report.kind,
        "summary": report.summary,
        "reason": report.reason,
        "problems": list(report.problems),
        "actions": actions,
        "artifact": report.artifact_path,
        "idempotency_key": report.idempotency_key,
        "attempt": report.attempt,
        "run_marker": report.run_marker,
        "started_at": report.started_at,
        "finished_at": report.finished_at,
        "dry_run": report.dry_run,
    }
    return cast(dict[str, Any], redact_data(record))


def store_record(settings: MemorySettings, record: dict[str, Any], *, token: str | None) -> None:
    """Store one record in the configured sink; raise MemoryStoreError when that fails."""
    if settings.sink == "none":
        return
    if settings.sink == "jsonl":
        if settings.path is None:
            raise MemoryStoreError("memory.path is missing; set it in the config or use memory.sink none")
        _append_jsonl(settings.path, record)
        return
    if settings.sink == "http":
        _post_record(settings, record, token)
        return
    raise MemoryStoreError(f"unknown memory.sink {settings.sink!r}; expected none, jsonl or http")


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    key = str(record.get("idempotency_key") or "")
    ticket = record.get("ticket_id")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MemoryStoreError(
            f"cannot create the directory of memory file {path}: {exc.strerror}; fix memory.path in the config"
        ) from None
    try:
        existing_keys, ends_with_newline = _scan_jsonl(path)
    except OSError as exc:
        raise MemoryStoreError(f"cannot read memory file {path}: {exc.strerror}") from None
    # Check, then append: only one pass runs at a time (the state directory lock),
    # so no other glpibot writer can add the same key in between.
    if key and key in existing_keys:
        logger.info("ticket %s: memory record %s already in %s", ticket, key, path)
        return

    line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
    if not ends_with_newline:
        # A writer that crashed mid-line left a partial line; start on a fresh one.
        line = "\n" + line
    data = line.encode("utf-8")
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            # One write call with O_APPEND puts the whole line at the end of the file.
            written = os.write(descriptor, data)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as exc:
        raise MemoryStoreError(f"cannot append to memory file {path}: {exc.strerror}") from None
    if written != len(data):
        raise MemoryStoreError(f"short write to memory file {path}: {written} of {len(data)} bytes")
    logger.info("ticket %s: memory record %s appended to %s", ticket, key, path)


def _scan_jsonl(path: Path) -> tuple[set[str], bool]:
    """Return the idempotency keys in a JSON Lines file and whether it ends with a newline.

    Lines that are not JSON objects (a partial line from a crash) are skipped.
    """
    keys: set[str] = set()
    last = b"\n"
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return keys, True
    with handle:
        for raw in handle:
            last = raw
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("idempotency_key"):
                keys.add(str(entry["idempotency_key"]))
    return keys, last.endswith(b"\n")


def _post_record(settings: MemorySettings, record: dict[str, Any], token: str | None) -> None:
    if not token:
        raise MemoryStoreError(
            f"the memory service token is missing: set {MEMORY_TOKEN.env_var}, or provide the credential file "
            f"'{MEMORY_TOKEN.credential}' in $CREDENTIALS_DIRECTORY"
        )
    if not settings.url:
        raise MemoryStoreError("memory.url is missing; set it when memory.sink is http")
    register_secret(token)
    key = str(record.get("idempotency_key") or "")
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    if key:
        headers["Idempotency-Key"] = key
    body = json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8")

    with requests.Session() as session:
        # Proxy variables and .netrc from the environment must not redirect the token.
        session.trust_env = False
        try:
            response = session.post(
                settings.url, data=body, headers=headers, timeout=settings.timeout_s, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise MemoryStoreError(
                f"cannot reach the memory service at {redact(settings.url)}: {_mask(str(exc), token)}"
            ) from None

    if 200 <= response.status_code < 300:
        logger.info("ticket %s: memory record %s stored at %s", record.get("ticket_id"), key, redact(settings.url))
        return
    excerpt = _mask(response.text[:BODY_EXCERPT_CHARS], token).replace("\n", " ").strip()
    hint = ""
    if 300 <= response.status_code < 400:
        location = _mask(response.headers.get("Location", ""), token)
        hint = f"; redirects are not followed (Location: {location}), so set memory.url to the final URL"
    raise MemoryStoreError(
        f"the memory service at {redact(settings.url)} returned HTTP {response.status_code}{hint}: {excerpt}"
    )


def _mask(text: str, token: str) -> str:
    # redact() skips registered values shorter than 4 characters, so the token is masked here too.
    return redact(text).replace(token, MASK)
