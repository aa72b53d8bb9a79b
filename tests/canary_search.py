"""Find the canary secrets (glpibot/testing/canaries.py) in text and in the files of a folder.

A hit names the canary, where it was found and about 80 characters around
it, with every canary in that excerpt masked. EXCLUDED_FILES lists the only
files that scan_tree skips, each a place where a secret must be.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from glpibot.credentials import GLPI_CLIENT_SECRET, GLPI_PASSWORD, MEMORY_TOKEN, SSH_KEY_PASSPHRASE
from glpibot.testing import canaries

EXCERPT_CHARS = 80
CREDENTIALS_DIR_NAME = "credentials"  # tests name their fake $CREDENTIALS_DIRECTORY this way
CREDENTIAL_NAMES = frozenset(
    source.credential for source in (GLPI_CLIENT_SECRET, GLPI_PASSWORD, MEMORY_TOKEN, SSH_KEY_PASSPHRASE)
)
TOKEN_CACHE_NAMES = frozenset({"token.json", "glpi-token.json"})  # the pass's cache and the client fixture's
EXCLUDED_FILES = (
    "a token cache (token.json or glpi-token.json) with mode 0600: it must hold the tokens",
    f"a credential file ({', '.join(sorted(CREDENTIAL_NAMES))}) in a directory named "
    f"'{CREDENTIALS_DIR_NAME}': a test wrote it as the input of a fake $CREDENTIALS_DIRECTORY",
    "a private key file (it starts with '-----BEGIN' and names a PRIVATE KEY)",
)
SQLITE_HEADER = b"SQLite format 3\x00"
_LOOSE_OBJECT = re.compile(r"^[0-9a-f]{38}$")


@dataclass(frozen=True)
class Hit:
    """One canary found: which one, where, and the text around it with every canary masked."""

    canary: str
    where: str
    excerpt: str

    def line(self) -> str:
        return f"{self.canary} in {self.where}: {self.excerpt!r}"


# Matching


def _patterns() -> list[tuple[str, re.Pattern[str]]]:
    exact = [(name, re.compile(re.escape(value))) for name, value in canaries.VALUES.items()]
    exact.append(("GLPI token", canaries.TOKEN_PATTERN))
    # The start of a canary value still identifies a copy that a length limit cut short.
    stems = [(f"part of the {name}", re.compile(re.escape(value.rsplit("-", 1)[0]))) for name, value in canaries.VALUES.items()]
    return exact + stems


_PATTERNS = _patterns()
# Whole values come first in the alternation, so at any position a whole value wins over its stem.
_ANY = re.compile("|".join(f"(?P<p{index}>{pattern.pattern})" for index, (_name, pattern) in enumerate(_PATTERNS)))


def _name(match: re.Match[str]) -> str:
    assert match.lastgroup is not None
    return _PATTERNS[int(match.lastgroup[1:])][0]


def mask_canaries(text: str) -> str:
    """Return text with every canary, whole or cut, replaced by `<name>`."""
    return _ANY.sub(lambda match: f"<{_name(match)}>", text)


def find_canaries(text: str, where: str) -> list[Hit]:
    """Return a Hit for every canary value, token-shaped value or cut canary value in text.

    The excerpt is cut from the text after every canary in it is masked, so
    the cut never leaves part of a canary visible.
    """
    pieces: list[str] = []
    spans: list[tuple[str, int, int]] = []
    length = 0
    last = 0
    for match in _ANY.finditer(text):
        marker = f"<{_name(match)}>"
        pieces.append(text[last : match.start()])
        length += match.start() - last
        spans.append((_name(match), length, length + len(marker)))
        pieces.append(marker)
        length += len(marker)
        last = match.end()
    if not spans:
        return []
    pieces.append(text[last:])
    masked = "".join(pieces)
    half = EXCERPT_CHARS // 2
    hits = []
    for name, start, end in spans:
        around = masked[max(0, start - half) : end + half]
        hits.append(Hit(name, where, "".join(char if char.isprintable() else " " for char in around)))
    return hits


# Files


def excluded_reason(path: Path) -> str | None:
    """Return why a file may hold a secret and is skipped (one of EXCLUDED_FILES), or None."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None
    if path.name in TOKEN_CACHE_NAMES and mode == 0o600:
        return EXCLUDED_FILES[0]
    if path.name in CREDENTIAL_NAMES and path.parent.name == CREDENTIALS_DIR_NAME:
        return EXCLUDED_FILES[1]
    try:
        with path.open("rb") as handle:
            first_line = handle.readline(200)
    except OSError:
        return None
    if first_line.startswith(b"-----BEGIN ") and b"PRIVATE KEY-----" in first_line:
        return EXCLUDED_FILES[2]
    return None


def _sqlite_text(path: Path) -> str:
    """Return the SQL dump of a SQLite file, read from a copy so the original and its journal stay untouched."""
    with tempfile.TemporaryDirectory(prefix="glpibot-secret-scan-") as scratch:
        copy = Path(scratch) / path.name
        shutil.copyfile(path, copy)
        for suffix in ("-wal", "-journal"):
            sidecar = path.with_name(path.name + suffix)
            if sidecar.is_file():
                shutil.copyfile(sidecar, copy.with_name(copy.name + suffix))
        connection = sqlite3.connect(copy)
        try:
            return "\n".join(connection.iterdump())
        finally:
            connection.close()


def scan_file(path: Path, notes: list[str] | None = None) -> list[Hit]:
    """Search one file's bytes. SQLite files are also searched as a SQL dump, loose git objects also decompressed.

    A SQLite file that cannot be dumped (a test may corrupt one on purpose)
    or a git object that does not decompress is searched as raw bytes only,
    and `notes` gets a line saying so.
    """
    data = path.read_bytes()
    # Latin-1 maps every byte to one character, so ASCII canaries match in any file.
    hits = find_canaries(data.decode("latin-1"), str(path))
    notes = notes if notes is not None else []
    if data.startswith(SQLITE_HEADER):
        try:
            hits += find_canaries(_sqlite_text(path), f"{path} (SQL dump)")
        except sqlite3.DatabaseError as exc:
            notes.append(f"{path}: cannot dump the SQLite file ({exc}); searched its raw bytes only")
    elif path.parent.parent.name == "objects" and _LOOSE_OBJECT.match(path.name):
        try:
            hits += find_canaries(zlib.decompress(data).decode("latin-1"), f"{path} (git object)")
        except zlib.error as exc:
            notes.append(f"{path}: cannot decompress the git object ({exc}); searched its raw bytes only")
    return hits


@dataclass
class TreeScan:
    """What scan_tree searched: the file count, the files skipped and why, the hits and the files only partly searched."""

    files: int = 0
    excluded: list[str] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def scan_tree(root: Path, *, skip: tuple[Path, ...] = ()) -> TreeScan:
    """Search every regular file under root (symlinks are not followed), except the EXCLUDED_FILES and `skip`.

    A file that cannot be read counts as a hit, because it was not searched.
    """
    result = TreeScan()
    for directory, _subdirs, names in os.walk(root):
        for name in sorted(names):
            path = Path(directory) / name
            if path in skip or path.is_symlink() or not path.is_file():
                continue
            reason = excluded_reason(path)
            if reason is not None:
                result.excluded.append(f"{path}: {reason}")
                continue
            result.files += 1
            try:
                result.hits += scan_file(path, result.notes)
            except OSError as exc:
                result.hits.append(Hit("unreadable file", str(path), exc.strerror or str(exc)))
    return result


def scan_marked_file(path: Path, label: str) -> list[Hit]:
    """Search a file made of `=== <test>` sections and name the section of every hit."""
    if not path.is_file():
        return []
    hits: list[Hit] = []
    section = "session start"
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("=== "):
            section = line[4:]
            continue
        hits += find_canaries(line, f"{label} ({section})")
    return hits
