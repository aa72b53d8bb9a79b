"""A real OpenSSH server on 127.0.0.1 for the SSH tests, with stand-in commands on its PATH.

How remote commands are faked
-----------------------------
The server runs as the current user with throwaway host keys and a
throwaway client key. Its sshd_config sets two variables for every session
with `SetEnv` (OpenSSH 7.8 and later), so the user's real home and
dotfiles are never touched:

- `PATH=<standins dir>:/usr/local/bin:/usr/bin:/bin`. The standins dir
  is a fresh copy of tests/standins/ for each test, so a test may add or
  replace scripts there (`sshd.add_standin(name, text)`, `sshd.standins_dir`).
- `GLPIBOT_STANDIN_STATE=<state dir>`, emptied before each test.

With an sshd too old for SetEnv, a ForceCommand wrapper exports the same
two variables and then runs `sh -c "$SSH_ORIGINAL_COMMAND"`.

A stand-in is an executable script (python3 is on the PATH) that:

1. appends its argv as one JSON array per line to
   `$GLPIBOT_STANDIN_STATE/calls.log`. argv[0] is reduced to the program's
   base name, so `sudo -n systemctl status x` logs
   `["sudo", "-n", "systemctl", "status", "x"]` and then, once the sudo
   stand-in runs it, `["systemctl", "status", "x"]`;
2. reads its scenario from files in `$GLPIBOT_STANDIN_STATE/` (for example
   `sudo-mode` holding "ok", "password" or "tty"), which tests write with
   `sshd.set_scenario(name, text)`, and uses a documented default when the
   file is missing;
3. prints what the real tool prints in that scenario and exits with its status.

`sshd.calls()` returns the logged argv lists in order.

Client keys
-----------
Two client keys are in authorized_keys before every test: the plain
`client_key_path`, which host_entry() and config() use, and
`encrypted_key_path`, encrypted with the canary passphrase
`canaries.SSH_KEY_PASSPHRASE`. A test that passes that passphrase through
GLPIBOT_SSH_KEY_PASSPHRASE (`sshd.key_passphrase`) and sets
`key_file=str(sshd.encrypted_key_path)` exercises the passphrase path, and
the session's secret scanner then checks that the passphrase leaks nowhere.

Connections are counted from the server's log (LogLevel VERBOSE):
`connection_count()` counts "Connection from" lines, `accepted_count()`
counts "Accepted publickey" lines. One server serves the whole test
session, so tests compare counts before and after.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from glpibot.config import Config, HostSettings, config_from_dict
from glpibot.testing import canaries

SSHD_PATH = Path("/usr/sbin/sshd")
SFTP_SERVER_PATH = Path("/usr/lib/openssh/sftp-server")
STANDINS_SOURCE = Path(__file__).resolve().parent / "standins"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
PRIVILEGE_SEPARATION_DIR = Path("/run/sshd")  # sshd started as root refuses to run without it


def sshd_missing_reason() -> str | None:
    """Return why the SSH tests cannot run here, or None when sshd is installed."""
    if not SSHD_PATH.is_file():
        return f"OpenSSH server not installed ({SSHD_PATH} is missing); install Debian's openssh-server"
    return None


def write_private_key(path: Path, kind: str = "ed25519", *, passphrase: str | None = None) -> paramiko.PKey:
    """Write a new private key in OpenSSH format (mode 0600) and return it as a paramiko key."""
    private_key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
    if kind == "ed25519":
        private_key = ed25519.Ed25519PrivateKey.generate()
    elif kind == "ecdsa":
        private_key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"unsupported key type {kind}; use ed25519 or ecdsa")
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    )
    data = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption)
    path.write_bytes(data)
    path.chmod(0o600)
    return paramiko.PKey.from_path(path, passphrase.encode() if passphrase else None)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _sshd_accepts_setenv(config_path: Path) -> bool:
    completed = subprocess.run(
        [str(SSHD_PATH), "-t", "-f", str(config_path)], capture_output=True, text=True, check=False
    )
    return completed.returncode == 0


class SshServer:
    """One sshd process and its files under `base_dir`; start() and stop() it once per test session."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.user = getpass.getuser()
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.standins_dir = base_dir / "standins"
        self.state_dir = base_dir / "standin-state"
        self.log_path = base_dir / "sshd.log"
        self.config_path = base_dir / "sshd_config"
        self.client_key_path = base_dir / "client_ed25519"
        self.encrypted_key_path = base_dir / "client_ed25519_encrypted"
        self.key_passphrase = canaries.SSH_KEY_PASSPHRASE
        self.host_keys: dict[str, paramiko.PKey] = {}
        self.env_mechanism = "setenv"
        self.client_key: paramiko.PKey | None = None
        self.encrypted_key: paramiko.PKey | None = None

    @property
    def pid(self) -> int:
        """Process id of the listening sshd."""
        if self.process is None:
            raise RuntimeError("sshd is not running")
        return self.process.pid

    def start(self) -> None:
        """Write keys and config, start sshd and wait until it listens; raise RuntimeError with its log."""
        reason = sshd_missing_reason()
        if reason:
            raise RuntimeError(reason)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        for kind in ("ed25519", "ecdsa"):
            self.host_keys[kind] = write_private_key(self.base_dir / f"ssh_host_{kind}_key", kind)
        self.client_key = write_private_key(self.client_key_path)
        self.encrypted_key = write_private_key(self.encrypted_key_path, passphrase=self.key_passphrase)
        self.reset()
        if os.geteuid() == 0:
            PRIVILEGE_SEPARATION_DIR.mkdir(mode=0o755, exist_ok=True)

        self.port = free_port()
        self.config_path.write_text(self._config_text("setenv"))
        if not _sshd_accepts_setenv(self.config_path):
            self.env_mechanism = "forcecommand"
            self._write_env_wrapper()
            self.config_path.write_text(self._config_text("forcecommand"))
        self._launch()

    def _config_text(self, mechanism: str) -> str:
        path_value = f"{self.standins_dir}:/usr/local/bin:/usr/bin:/bin"
        lines = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.base_dir / 'ssh_host_ed25519_key'}",
            f"HostKey {self.base_dir / 'ssh_host_ecdsa_key'}",
            f"PidFile {self.base_dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.base_dir / 'authorized_keys'}",
            f"AllowUsers {self.user}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "LogLevel VERBOSE",
            "MaxStartups 200",
            "MaxSessions 100",
            "MaxAuthTries 10",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
            "AllowTcpForwarding no",
        ]
        if mechanism == "setenv":
            # Debian's bash reads ~/.bashrc for commands run by sshd, and a .bashrc
            # may put other dirs before the stand-ins. With SHLVL=1, bash counts
            # itself as a nested shell (SHLVL 2) and skips ~/.bashrc.
            lines.append(f'SetEnv "PATH={path_value}" "GLPIBOT_STANDIN_STATE={self.state_dir}" SHLVL=1')
            lines.append("Subsystem sftp internal-sftp")
        else:
            lines.append(f"ForceCommand {self.base_dir / 'env-wrapper'}")
            lines.append(f"Subsystem sftp {SFTP_SERVER_PATH}")
        return "\n".join(lines) + "\n"

    def _write_env_wrapper(self) -> None:
        wrapper = self.base_dir / "env-wrapper"
        path_value = f"{self.standins_dir}:/usr/local/bin:/usr/bin:/bin"
        wrapper.write_text(
            "#!/bin/sh\n"
            f"PATH='{path_value}'; export PATH\n"
            f"GLPIBOT_STANDIN_STATE='{self.state_dir}'; export GLPIBOT_STANDIN_STATE\n"
            'exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n'
        )
        wrapper.chmod(0o755)

    def _launch(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(SSHD_PATH), "-D", "-e", "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        listening = f"Server listening on 127.0.0.1 port {self.port}"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited with status {self.process.returncode}:\n{self.log_text()}")
            if listening in self.log_text():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not listen on port {self.port} within {START_TIMEOUT_S:g} s:\n{self.log_text()}")

    def stop(self) -> None:
        """Stop the sshd this object started (SIGTERM to its pid, then wait); nothing else is signalled."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT_S)

    def reset(self) -> None:
        """Give the next test a fresh copy of the stand-ins, an empty state dir and only the two client keys."""
        if self.client_key is not None:
            self.authorize_key(self.client_key, replace=True)
        if self.encrypted_key is not None:
            self.authorize_key(self.encrypted_key)
        shutil.rmtree(self.standins_dir, ignore_errors=True)
        if STANDINS_SOURCE.is_dir():
            shutil.copytree(STANDINS_SOURCE, self.standins_dir)
        else:
            self.standins_dir.mkdir(parents=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.state_dir.mkdir(parents=True)

    def authorize_key(self, key: paramiko.PKey, *, replace: bool = False) -> None:
        """Add a public key to authorized_keys, or make it the only one."""
        path = self.base_dir / "authorized_keys"
        line = f"{key.get_name()} {key.get_base64()} glpibot-tests\n"
        existing = "" if replace or not path.exists() else path.read_text()
        path.write_text(existing + line)
        path.chmod(0o600)

    def log_text(self) -> str:
        """Return the server's log so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def connection_count(self) -> int:
        """Return how many TCP connections the server has accepted since it started."""
        return self.log_text().count("Connection from ")

    def accepted_count(self) -> int:
        """Return how many public key logins the server has accepted since it started."""
        return self.log_text().count("Accepted publickey for ")

    def calls(self) -> list[list[str]]:
        """Return the argv lists the stand-ins logged since the last reset, in order."""
        path = self.state_dir / "calls.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def set_scenario(self, name: str, text: str) -> None:
        """Write the scenario file `name` that stand-ins read from the state dir."""
        (self.state_dir / name).write_text(text, encoding="utf-8")


class SshdHandle:
    """The shared server as one test uses it: settings helpers, stand-ins and logs.

    Files a test changes (known_hosts copies, client keys) live in the test's own
    directory. The stand-ins dir and the state dir are reset before each test.
    """

    def __init__(self, server: SshServer, test_dir: Path) -> None:
        self.server = server
        self.test_dir = test_dir
        test_dir.mkdir(parents=True, exist_ok=True)
        self.known_hosts = self.write_known_hosts(
            hosts_line(f"[127.0.0.1]:{server.port}", server.host_keys["ed25519"]), "known_hosts"
        )

    port = property(lambda self: self.server.port, doc="TCP port of the server on 127.0.0.1.")
    pid = property(lambda self: self.server.pid, doc="Process id of the listening sshd.")
    user = property(lambda self: self.server.user, doc="Login user, the user running the tests.")
    standins_dir = property(lambda self: self.server.standins_dir, doc="Directory first on the remote PATH.")
    state_dir = property(lambda self: self.server.state_dir, doc="$GLPIBOT_STANDIN_STATE of the remote commands.")
    client_key_path = property(lambda self: self.server.client_key_path, doc="Client key listed in authorized_keys.")
    encrypted_key_path = property(
        lambda self: self.server.encrypted_key_path, doc="Client key in authorized_keys, encrypted with key_passphrase."
    )
    key_passphrase = property(lambda self: self.server.key_passphrase, doc="The canary passphrase of encrypted_key_path.")

    def host_key(self, kind: str = "ed25519") -> paramiko.PKey:
        """Return the server's public host key of type "ed25519" or "ecdsa"."""
        return self.server.host_keys[kind]

    def host_entry(self, **overrides: object) -> dict[str, object]:
        """Return a `hosts:` config entry for this server, as the YAML config would hold it."""
        entry: dict[str, object] = {
            "address": "127.0.0.1",
            "port": self.server.port,
            "user": self.server.user,
            "key_file": str(self.server.client_key_path),
            "known_hosts": str(self.known_hosts),
            "sudo": False,
            "connect_timeout_s": 5,
            "command_timeout_s": 20,
        }
        entry.update(overrides)
        # None removes a key, so a test can rely on a default such as the ssh-key credential.
        return {key: value for key, value in entry.items() if value is not None}

    def host_settings(self, name: str = "svc-auto", **overrides: object) -> HostSettings:
        """Return typed settings for this server; overrides use HostSettings field names and types."""
        base = HostSettings(
            name=name,
            address="127.0.0.1",
            port=self.server.port,
            user=self.server.user,
            key_file=self.server.client_key_path,
            known_hosts=self.known_hosts,
            sudo=False,
            connect_timeout_s=5.0,
            command_timeout_s=20.0,
        )
        return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]

    def config(
        self,
        hosts: dict[str, dict[str, object]] | list[str] | None = None,
        actions: dict[str, object] | None = None,
        **top_level: object,
    ) -> Config:
        """Build a Config whose hosts all point at this server, through config_from_dict.

        `hosts` maps inventory names to overrides of host_entry() (None
        removes a key), or lists names; the default is one host named "svc-auto". The glpi section is a
        placeholder that nothing contacts.
        """
        if hosts is None:
            hosts = ["svc-auto"]
        if isinstance(hosts, list):
            hosts = {name: {} for name in hosts}
        data: dict[str, object] = {
            "glpi": {
                "url": "http://127.0.0.1:9",
                "client_id": "glpibot-tests",
                "username": "glpibot",
                "category": "Automation",
            },
            "state_dir": str(self.test_dir / "state"),
            "artifacts": {"dir": str(self.test_dir / "artifacts")},
            "memory": {"sink": "none"},
            "hosts": {name: self.host_entry(**overrides) for name, overrides in hosts.items()},
            "actions": actions or {},
        }
        data.update(top_level)
        return config_from_dict(data)

    def write_known_hosts(self, text: str, filename: str = "known_hosts.test") -> Path:
        """Write a known_hosts file into the test's directory and return its path."""
        path = self.test_dir / filename
        path.write_text(text, encoding="utf-8")
        return path

    def known_hosts_hashed(self) -> Path:
        """Return a known_hosts file whose one entry hides "[127.0.0.1]:PORT" as a salted hash."""
        line = hosts_line(f"[127.0.0.1]:{self.server.port}", self.server.host_keys["ed25519"], hashed=True)
        return self.write_known_hosts(line, "known_hosts.hashed")

    def authorize_key(self, key: paramiko.PKey) -> None:
        """Let `key` log in too, for this test only."""
        self.server.authorize_key(key)

    def add_standin(self, name: str, text: str) -> Path:
        """Write an executable script into the stand-ins dir for this test only."""
        path = self.server.standins_dir / name
        path.write_text(text, encoding="utf-8")
        path.chmod(0o755)
        return path

    def connection_count(self) -> int:
        """Return the TCP connections the server accepted since it started; compare before and after."""
        return self.server.connection_count()

    def accepted_count(self) -> int:
        """Return the public key logins the server accepted since it started."""
        return self.server.accepted_count()

    def calls(self) -> list[list[str]]:
        """Return the argv lists the stand-ins logged during this test."""
        return self.server.calls()

    def set_scenario(self, name: str, text: str) -> None:
        """Write the scenario file `name` that stand-ins read."""
        self.server.set_scenario(name, text)


def hosts_line(name: str, key: paramiko.PKey, *, hashed: bool = False) -> str:
    """Return one known_hosts line; hashed lines hide the name as OpenSSH's HashKnownHosts does."""
    written_name = paramiko.HostKeys.hash_host(name) if hashed else name
    return f"{written_name} {key.get_name()} {key.get_base64()}\n"
