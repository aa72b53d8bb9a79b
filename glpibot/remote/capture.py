"""Bounded capture of one output stream: the first and last bytes are kept, the middle is counted.

A remote command may write gigabytes. Only `cap_bytes` are kept in memory
(the first half and the last half), so memory stays bounded by the cap
whatever the command writes.
"""

from __future__ import annotations

DEFAULT_CAP_BYTES = 256 * 1024  # per stream


def format_size(size: int) -> str:
    """Return a byte count as "512 bytes", "128 KiB", "1.5 KiB" or "4.0 MiB"."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024**2:
        return f"{size // 1024} KiB" if size % 1024 == 0 else f"{size / 1024:.1f} KiB"
    if size < 1024**3:
        return f"{size / 1024**2:.1f} MiB"
    return f"{size / 1024**3:.1f} GiB"


def _drop_incomplete_tail(data: bytes) -> bytes:
    """Remove a UTF-8 sequence that the cut split at the end of `data`."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return data
        if byte >= 0xC0:  # lead byte: keep it only when its sequence is complete
            if byte < 0xE0:
                needed = 2
            elif byte < 0xF0:
                needed = 3
            else:
                needed = 4
            return data if back >= needed else data[:-back]
    return data


def _drop_incomplete_head(data: bytes) -> bytes:
    """Remove UTF-8 continuation bytes that the cut left at the start of `data`."""
    start = 0
    while start < min(3, len(data)) and 0x80 <= data[start] < 0xC0:
        start += 1
    return data[start:]


class StreamCapture:
    """Head and tail of a byte stream fed in chunks, with a count of every byte."""

    def __init__(self, cap_bytes: int = DEFAULT_CAP_BYTES) -> None:
        if cap_bytes < 2:
            raise ValueError(f"cap_bytes must be at least 2, got {cap_bytes}")
        self.cap_bytes = cap_bytes
        self._head_limit = cap_bytes // 2
        self._tail_limit = cap_bytes - self._head_limit
        self._head = bytearray()
        self._tail = bytearray()
        self.total_bytes = 0

    @property
    def truncated(self) -> bool:
        """True when more bytes arrived than the cap keeps."""
        return self.total_bytes > self.cap_bytes

    def feed(self, data: bytes) -> None:
        """Add one chunk. Memory stays at most cap_bytes plus the chunk being added."""
        self.total_bytes += len(data)
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if not data:
            return
        self._tail += data
        excess = len(self._tail) - self._tail_limit
        if excess > 0:
            del self._tail[:excess]

    def text(self) -> str:
        """Return the kept bytes as UTF-8 text, with a marker line where bytes were cut."""
        if not self.truncated:
            return (bytes(self._head) + bytes(self._tail)).decode("utf-8", errors="replace")
        head = _drop_incomplete_tail(bytes(self._head))
        tail = _drop_incomplete_head(bytes(self._tail))
        marker = (
            f"[output cut: {format_size(self.total_bytes)} total, "
            f"first {format_size(len(self._head))} and last {format_size(len(self._tail))} shown]"
        )
        head_text = head.decode("utf-8", errors="replace")
        separator_before = "" if head_text.endswith("\n") else "\n"
        return f"{head_text}{separator_before}{marker}\n" + tail.decode("utf-8", errors="replace")
