"""pytest fixtures for the real-sshd tests: `ssh_server` (one per session) and `sshd` (per test).

When /usr/sbin/sshd is missing the tests that use them are skipped with the
reason, unless GLPIBOT_REQUIRE_SSHD=1, where they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sshd import SshdHandle, SshServer, sshd_missing_reason

REQUIRE_SSHD_ENV = "GLPIBOT_REQUIRE_SSHD"


@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """Start one OpenSSH server on 127.0.0.1 for the test session and stop it at the end."""
    reason = sshd_missing_reason()
    if reason:
        if os.environ.get(REQUIRE_SSHD_ENV) == "1":
            pytest.fail(f"{reason} ({REQUIRE_SSHD_ENV}=1 makes this an error)")
        pytest.skip(reason)
    server = SshServer(Path(tmp_path_factory.mktemp("sshd")))
    try:
        server.start()
    except RuntimeError as exc:
        server.stop()
        pytest.fail(f"cannot start the test sshd: {exc}")
    yield server
    server.stop()


@pytest.fixture
def sshd(ssh_server: SshServer, tmp_path: Path) -> SshdHandle:
    """Return the shared server with fresh stand-ins, an empty state dir and this test's known_hosts."""
    ssh_server.reset()
    return SshdHandle(ssh_server, tmp_path / "ssh")
