"""The secret scanner finds planted canaries: in files, SQLite, git objects, log records, follow-ups and a whole session.

Every planted canary lives in a scratch folder outside pytest's basetemp, or
in objects that the session scanner never reads, so this module plants leaks
without failing the session it runs in.
"""

from __future__ import annotations

import io
import logging
import os
import sqlite3
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from glpibot.redact import forget_secrets, register_secret
from glpibot.testing import canaries, simulator
from glpibot.testing.simulator import GlpiSimulator
from tests.canary_scan import FollowupScanner, LogRecordScanner, summary_line
from tests.canary_search import EXCERPT_CHARS, find_canaries, mask_canaries, scan_marked_file, scan_tree

REPO = Path(__file__).resolve().parent.parent
FILLER = "lorem ipsum dolor sit amet " * 4


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A folder outside pytest's basetemp, removed after the test, so planted canaries do not fail the session."""
    with tempfile.TemporaryDirectory(prefix="glpibot-canary-plant-") as directory:
        yield Path(directory)


@pytest.fixture
def clean_secrets() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


# Text


def test_value_found_and_masked() -> None:
    text = f"{FILLER}db_password={canaries.BOT_PASSWORD} {FILLER}"

    hits = find_canaries(text, "a text")

    assert [hit.canary for hit in hits] == ["bot password"]
    assert hits[0].where == "a text"
    assert "<bot password>" in hits[0].excerpt
    assert canaries.BOT_PASSWORD not in hits[0].excerpt
    assert len(hits[0].excerpt) <= EXCERPT_CHARS + len("<bot password>")


def test_token_shape_found() -> None:
    token = canaries.new_access_token()

    hits = find_canaries(f"Authorization: Bearer {token}", "a header")

    assert [hit.canary for hit in hits] == ["GLPI token"]
    assert token[len(canaries.TOKEN_PREFIX) :] not in hits[0].excerpt


def test_token_prefix_alone_ignored() -> None:
    assert find_canaries(f"tokens start with {canaries.TOKEN_PREFIX} here", "a docstring") == []


def test_cut_value_found() -> None:
    cut = canaries.SSH_KEY_PASSPHRASE[:-3]

    hits = find_canaries(f"passphrase: {cut}...", "a truncated summary")

    assert [hit.canary for hit in hits] == ["part of the SSH key passphrase"]


def test_excerpt_masks_neighbours() -> None:
    text = f"{canaries.CLIENT_SECRET}{canaries.MEMORY_TOKEN}{canaries.BOT_PASSWORD}"

    hits = find_canaries(text, "three in a row")

    assert [hit.canary for hit in hits] == ["client secret", "memory token", "bot password"]
    for value in canaries.VALUES.values():
        assert not [hit for hit in hits if value in hit.excerpt or value[:12] in hit.excerpt]


def test_mask_canaries_every_kind() -> None:
    text = " ".join([*canaries.VALUES.values(), canaries.new_refresh_token()])

    masked = mask_canaries(text)

    assert "CANARY" not in masked
    assert masked.count("<") == 5


# Files


def test_planted_file_found(scratch: Path) -> None:
    leak = scratch / "case" / "ticket-17.md"
    leak.parent.mkdir()
    leak.write_text(f"# Ticket 17\n\nOutput:\n{FILLER}{canaries.BOT_PASSWORD}\n")
    (scratch / "clean.txt").write_text("nothing to see\n")

    result = scan_tree(scratch)

    assert result.files == 2
    assert [(hit.canary, hit.where) for hit in result.hits] == [("bot password", str(leak))]


def test_sqlite_value_found(scratch: Path) -> None:
    # A value longer than a page goes to overflow pages, where the raw bytes may split it.
    database = scratch / "ledger.sqlite3"
    connection = sqlite3.connect(database)
    connection.execute("CREATE TABLE steps (result_json TEXT)")
    connection.execute("INSERT INTO steps VALUES (?)", ("x" * 4070 + canaries.MEMORY_TOKEN + "y" * 9000,))
    connection.commit()
    connection.close()

    hits = scan_tree(scratch).hits

    assert ("memory token", f"{database} (SQL dump)") in [(hit.canary, hit.where) for hit in hits]


def test_corrupt_sqlite_searched_raw(scratch: Path) -> None:
    database = scratch / "torn.sqlite3"
    database.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200 + canaries.CLIENT_SECRET.encode() + b"\x00" * 300)

    result = scan_tree(scratch)

    assert [(hit.canary, hit.where) for hit in result.hits] == [("client secret", str(database))]
    assert len(result.notes) == 1
    assert "searched its raw bytes only" in result.notes[0]


def test_git_object_found(scratch: Path) -> None:
    loose = scratch / "docs" / ".git" / "objects" / "ab" / ("c" * 38)
    loose.parent.mkdir(parents=True)
    loose.write_bytes(zlib.compress(f"blob 60\x00artifact with {canaries.CLIENT_SECRET}\n".encode()))

    hits = scan_tree(scratch).hits

    assert [(hit.canary, hit.where) for hit in hits] == [("client secret", f"{loose} (git object)")]


def test_token_cache_excluded(scratch: Path) -> None:
    cache = scratch / "state" / "token.json"
    cache.parent.mkdir()
    cache.write_text(f'{{"access_token": "{canaries.new_access_token()}"}}')
    cache.chmod(0o600)

    private = scan_tree(scratch)
    cache.chmod(0o644)
    readable = scan_tree(scratch)

    assert private.hits == []
    assert private.files == 0
    assert len(private.excluded) == 1
    assert [hit.canary for hit in readable.hits] == ["GLPI token"]


def test_credential_file_excluded(scratch: Path) -> None:
    for folder in ("credentials", "elsewhere"):
        (scratch / folder).mkdir()
        (scratch / folder / "glpi-password").write_text(canaries.BOT_PASSWORD)

    result = scan_tree(scratch)

    assert [hit.where for hit in result.hits] == [str(scratch / "elsewhere" / "glpi-password")]
    assert result.excluded[0].startswith(str(scratch / "credentials" / "glpi-password"))


def test_private_key_excluded(scratch: Path) -> None:
    key = scratch / "id_ed25519"
    key.write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{canaries.SSH_KEY_PASSPHRASE}\n-----END OPENSSH PRIVATE KEY-----\n")
    notes = scratch / "notes.txt"
    notes.write_text(f"not a key\n-----BEGIN OPENSSH PRIVATE KEY-----\n{canaries.SSH_KEY_PASSPHRASE}\n")

    result = scan_tree(scratch)

    assert [hit.where for hit in result.hits] == [str(notes)]


def test_skip_list_honoured(scratch: Path) -> None:
    own = scratch / "secret-scan.json"
    own.write_text(canaries.BOT_PASSWORD)

    assert scan_tree(scratch, skip=(own,)).hits == []


# Log records


def record(name: str, message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, message, args, None)


def test_log_raw_message_found(clean_secrets: None) -> None:
    register_secret(canaries.BOT_PASSWORD)
    stream = io.StringIO()
    scanner = LogRecordScanner(stream)

    scanner.handle(record("glpibot.workflow.ticket", "login with %s", canaries.BOT_PASSWORD))

    assert [hit.canary for hit in scanner.raw_hits] == ["bot password"]
    assert find_canaries(stream.getvalue(), "production log") == []
    assert "[REDACTED]" in stream.getvalue()
    assert scanner.records == 1


def test_log_third_party_masked(clean_secrets: None) -> None:
    register_secret(canaries.SSH_KEY_PASSPHRASE)
    stream = io.StringIO()
    scanner = LogRecordScanner(stream)

    scanner.handle(record("paramiko.transport", "passphrase %s", canaries.SSH_KEY_PASSPHRASE))

    assert scanner.raw_hits == []  # raw messages are searched for glpibot loggers only
    assert find_canaries(stream.getvalue(), "production log") == []
    assert "paramiko.transport: passphrase [REDACTED]" in stream.getvalue()


def test_log_unregistered_value_found(clean_secrets: None) -> None:
    stream = io.StringIO()
    scanner = LogRecordScanner(stream)

    scanner.handle(record("urllib3.connectionpool", "header %s", canaries.MEMORY_TOKEN))

    assert [hit.canary for hit in find_canaries(stream.getvalue(), "production log")] == ["memory token"]


def test_log_record_left_unchanged(clean_secrets: None) -> None:
    register_secret(canaries.MEMORY_TOKEN)
    scanner = LogRecordScanner(io.StringIO())
    original = record("glpibot.outputs.memory", "token %s", canaries.MEMORY_TOKEN)

    scanner.handle(original)

    assert original.args == (canaries.MEMORY_TOKEN,)
    assert original.getMessage() == f"token {canaries.MEMORY_TOKEN}"


def test_marked_file_names_test(scratch: Path) -> None:
    path = scratch / "log-records.log"
    path.write_text(f"=== tests/test_a.py::test_one\nfine\n=== tests/test_b.py::test_two\nkey {canaries.CLIENT_SECRET}\n")

    hits = scan_marked_file(path, "a log record")

    assert [hit.where for hit in hits] == ["a log record (tests/test_b.py::test_two)"]


# Simulators


def test_followup_found_once() -> None:
    sim = GlpiSimulator()
    simulator.INSTANCES.discard(sim)  # the session scanner must not see this planted leak
    ticket_id = sim.add_ticket(name="t", content="x")
    sim.add_human_followup(ticket_id, f"<p>the password is {canaries.BOT_PASSWORD}</p>")
    sim.add_human_followup(ticket_id, "<p>nothing secret</p>")
    scanner = FollowupScanner()

    scanner(sim)
    scanner(sim)

    assert scanner.items == 2
    assert [hit.canary for hit in scanner.hits] == ["bot password"]
    assert f"ticket {ticket_id}" in scanner.hits[0].where


def test_simulator_defaults_are_canaries() -> None:
    sim = GlpiSimulator()
    simulator.INSTANCES.discard(sim)

    assert sim.client_secret == canaries.CLIENT_SECRET
    assert sim.users["homelab-bot"][1] == canaries.BOT_PASSWORD


# The whole session


INNER_TEST = '''
from glpibot.testing import canaries


def test_plants_leak(tmp_path):
    (tmp_path / "artifact.md").write_text("output: " + canaries.BOT_PASSWORD)
'''


def test_session_fails_on_leak(scratch: Path) -> None:
    (scratch / "test_inner.py").write_text(INNER_TEST)
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.canary_scan",
        "--basetemp", str(scratch / "basetemp"), "--rootdir", str(scratch), str(scratch / "test_inner.py"),
    ]  # fmt: skip

    result = subprocess.run(command, cwd=scratch, env=environment, capture_output=True, text=True, timeout=120)

    assert result.returncode == 1
    assert "1 passed" in result.stdout
    assert "secret scan: 1 hits in" in result.stdout
    assert "bot password in " in result.stdout
    assert "artifact.md" in result.stdout
    assert canaries.BOT_PASSWORD not in result.stdout + result.stderr
    assert (scratch / "basetemp" / "secret-scan.json").is_file()


def test_summary_line_format() -> None:
    counts = {"hits": 0, "files": 3, "log_records": 4, "followups_and_solutions": 5, "cli_outputs": 6, "failure_reports": 0}

    line = summary_line(counts)

    assert line.startswith("secret scan: 0 hits in 3 files, 4 log records, 5 follow-ups, 6 CLI outputs")
