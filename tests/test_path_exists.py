"""path_exists over SFTP against a real sshd that serves this machine's file system."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from glpibot.actions import get_action
from glpibot.actions.base import ActionContext, StepResult
from glpibot.actions.path_exists import ancestors_below
from glpibot.config import Config
from glpibot.remote.pool import SshPool
from glpibot.spec.model import Step
from tests.sshd import SshdHandle

# A file name that a shell would split, expand or treat as an option.
HOSTILE_NAME = "a b;$(id)`id`'\"&|-rf"


@pytest.fixture
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a fresh tree: srv/{data.txt, conf/, link -> /etc, passwd-link -> /etc/passwd} and docker/grafana/."""
    base = tmp_path_factory.mktemp("paths")
    srv = base / "srv"
    (srv / "conf").mkdir(parents=True)
    (srv / "data.txt").write_text("hello")
    (srv / "data.txt").chmod(0o640)
    (srv / HOSTILE_NAME).write_text("x")
    (srv / "link").symlink_to("/etc")
    (srv / "passwd-link").symlink_to("/etc/passwd")
    (base / "docker" / "grafana" / "nested").mkdir(parents=True)
    return base


@pytest.fixture
def pool_config(sshd: SshdHandle, root: Path) -> Iterator[tuple[SshPool, Config]]:
    allowed = {"svc-auto": [f"{root}/srv/**", f"{root}/docker/*"]}
    config = sshd.config(actions={"path_exists": {"allowed_paths": allowed}})
    with SshPool(config) as pool:
        yield pool, config


def step_for(path: str, kind: str | None = None) -> Step:
    params = {"path": path} if kind is None else {"path": path, "kind": kind}
    return Step(index=0, action="path_exists", params=params, host="svc-auto", path="", line=4)


def run_step(pool: SshPool, config: Config, step: Step) -> StepResult:
    return get_action("path_exists").run(step, ActionContext(config=config, ssh=pool, ticket_id=30))


def test_ancestors_below() -> None:
    assert ancestors_below("/srv", "/srv/a/b/c") == ["/srv/a", "/srv/a/b"]
    assert ancestors_below("/srv", "/srv/a") == []
    assert ancestors_below("/", "/a/b") == ["/a"]


def test_file_reported(root: Path, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    path = f"{root}/srv/data.txt"
    result = run_step(pool, config, step_for(path, "file"))
    assert result.ok is True
    assert result.summary.startswith(f"path {path} exists on svc-auto (a file, 5 bytes, mode 0640, uid {os.getuid()}")
    assert result.facts["type"] == "file"
    assert result.facts["size"] == 5
    assert result.facts["mode"] == "0640"
    assert result.facts["mtime"].endswith("Z")


def test_directory_reported(root: Path, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    result = run_step(pool, config, step_for(f"{root}/srv/conf", "directory"))
    assert result.ok is True
    assert result.facts["type"] == "directory"


def test_wrong_kind(root: Path, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    result = run_step(pool, config, step_for(f"{root}/srv/conf", "file"))
    assert result.ok is False
    assert result.summary == f"path {root}/srv/conf on svc-auto is a directory, expected a file"


def test_symlink_not_followed(root: Path, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    result = run_step(pool, config, step_for(f"{root}/srv/passwd-link"))
    assert result.ok is True
    assert result.facts["type"] == "symlink"
    assert result.facts["size"] == len("/etc/passwd")
    assert "a symbolic link" in result.summary


def test_symlink_is_not_a_file(root: Path, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    result = run_step(pool, config, step_for(f"{root}/srv/passwd-link", "file"))
    assert result.ok is False
    assert result.summary.endswith("is a symbolic link, expected a file (symbolic links are not followed)")


def test_symlink_in_middle_refused(root: Path, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    result = run_step(pool, config, step_for(f"{root}/srv/link/passwd"))
    assert result.ok is False
    assert result.summary.startswith(f"path {root}/srv/link/passwd goes through the symbolic link {root}/srv/link")
    assert "size" not in result.facts


def test_missing_path(root: Path, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    result = run_step(pool, config, step_for(f"{root}/srv/nope.txt"))
    assert result.ok is False
    assert result.summary == f"path {root}/srv/nope.txt does not exist on svc-auto"


def test_missing_parent(root: Path, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    result = run_step(pool, config, step_for(f"{root}/srv/nope/deeper.txt"))
    assert result.ok is False
    assert result.summary == f"path {root}/srv/nope/deeper.txt does not exist on svc-auto ({root}/srv/nope is missing)"


def test_hostile_name_literal(sshd: SshdHandle, root: Path, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    path = f"{root}/srv/{HOSTILE_NAME}"
    result = run_step(pool, config, step_for(path, "file"))
    assert result.ok is True
    assert result.facts["path"] == path
    assert sshd.calls() == []  # SFTP only: no command ran


def test_trailing_slash_normalised(root: Path, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    result = run_step(pool, config, step_for(f"{root}/srv/conf/", "directory"))
    assert result.ok is True
    assert result.facts["path"] == f"{root}/srv/conf"
    assert result.facts["normalised_from"] == f"{root}/srv/conf/"


def test_single_star_glob(root: Path, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    allowed = run_step(pool, config, step_for(f"{root}/docker/grafana", "directory"))
    refused = run_step(pool, config, step_for(f"{root}/docker/grafana/nested"))
    assert allowed.ok is True
    assert refused.summary.startswith(f"refused by policy: path '{root}/docker/grafana/nested' is outside")


@pytest.mark.parametrize(
    "suffix",
    ["/../../etc/passwd", "/./data.txt", "//data.txt", "/data.txt\x00", "/data.txt\n"],
)
def test_refused_without_connection(sshd: SshdHandle, root: Path, suffix: str) -> None:
    allowed = {"svc-auto": [f"{root}/srv/**"]}
    config = sshd.config(actions={"path_exists": {"allowed_paths": allowed}})
    before = sshd.connection_count()
    with SshPool(config) as pool:
        result = run_step(pool, config, step_for(f"{root}/srv{suffix}"))
        handshakes = pool.handshakes
    assert result.ok is False
    assert result.summary.startswith("refused by policy: ")
    assert handshakes == 0
    assert sshd.connection_count() == before


def test_outside_refused(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    before = sshd.connection_count()
    result = run_step(pool, config, step_for("/etc/shadow"))
    expected = "refused by policy: path '/etc/shadow' is outside actions.path_exists.allowed_paths.svc-auto"
    assert result.summary.startswith(expected)
    assert pool.handshakes == 0
    assert sshd.connection_count() == before
