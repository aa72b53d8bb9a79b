"""Canary secrets through every output path of real passes: none may appear, whatever the targets send back.

Every secret here is a canary (glpibot/testing/canaries.py). The targets
are hostile on purpose: an HTTP server and a remote command put every canary
in their output, and a memory service echoes its bearer token in an error.
Each test searches all that glpibot wrote for the canaries and also checks
that the canary really passed through, so a test cannot pass by accident.
"""

from __future__ import annotations

import io
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from glpibot.errors import GlpiAuthError, GlpiError, RemoteError
from glpibot.glpi.client import GlpiClient
from glpibot.redact import MASK, redact
from glpibot.glpi.auth import Token
from glpibot.remote.pool import SshPool
from glpibot.testing import Fault, canaries
from glpibot.workflow.effects import Effects
from glpibot.workflow.session import PassSession
from tests.botenv import BotEnv
from tests.canary_scan import LogRecordScanner
from tests.canary_search import Hit, find_canaries, scan_tree
from tests.fixtures_glpi import settings_for
from tests.httpservers import LocalHttpServer, RecordedRequest, Reply
from tests.sshd import SshdHandle, write_private_key

SECRET_LINES = "\n".join(f"{name}: {value}" for name, value in canaries.VALUES.items())

SOLVED = """
glpibot: 1
reason: read the service's configuration dump
action: http_check
params:
  url: "{url}/config-dump"
  expect_status: 200
"""

FAILING = """
glpibot: 1
action: http_check
params:
  url: "{url}/echo"
  expect_status: 200
"""

INVALID = """
glpibot: 1
action: http_check
params:
  url: "{url}/echo"
  expect_staus: 200
"""

REMOTE_STATUS = """
glpibot: 1
action: systemd_remote
host: svc-auto
params:
  unit: wiki.service
  operation: status
"""


def echo_reply(request: RecordedRequest) -> Reply:
    """Return a 503 reply whose body lists every request header and every canary."""
    headers = "\n".join(f"{name}: {value}" for name, value in sorted(request.headers.items()))
    return Reply(503, f"{headers}\n{SECRET_LINES}\n".encode())


@pytest.fixture
def leaky_http() -> Iterator[LocalHttpServer]:
    """A server whose bodies hold every canary: a 200 dump and a 503 that also echoes the request headers."""
    server = LocalHttpServer()
    server.route("/config-dump", Reply(200, f"service config\n{SECRET_LINES}\n".encode()))
    server.route("/echo", echo_reply)
    with server:
        yield server


@pytest.fixture
def logs() -> Iterator[LogRecordScanner]:
    """Every log record of the test at DEBUG, formatted as production prints it, raw glpibot messages searched."""
    scanner = LogRecordScanner(io.StringIO())
    names = ("glpibot", "urllib3", "paramiko")
    saved = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    logging.getLogger().addHandler(scanner)
    yield scanner
    logging.getLogger().removeHandler(scanner)
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


class _MemoryHandler(BaseHTTPRequestHandler):
    server: "_MemoryServer"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        authorization = self.headers.get("Authorization", "")
        self.server.authorizations.append(authorization)
        body = json.dumps({"error": "store is read-only", "you_sent": authorization}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _MemoryServer(ThreadingHTTPServer):
    daemon_threads = True
    authorizations: list[str]


@pytest.fixture
def echoing_memory_service() -> Iterator[_MemoryServer]:
    """A memory service on 127.0.0.1 that fails every POST with HTTP 500 and echoes the Authorization header."""
    server = _MemoryServer(("127.0.0.1", 0), _MemoryHandler)
    server.authorizations = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


# Helpers


def messages(bot: BotEnv) -> dict[str, str]:
    """Return every follow-up and solution in the simulator, by a readable name."""
    texts = {}
    for ticket_id in list(bot.sim.store.tickets):
        for item in bot.sim.followups(ticket_id):
            texts[f"follow-up {item['id']} of ticket {ticket_id}"] = str(item["content"])
        for item in bot.sim.solutions(ticket_id):
            texts[f"solution {item['id']} of ticket {ticket_id}"] = str(item["content"])
    return texts


def leaks(bot: BotEnv, extra: dict[str, str] | None = None) -> list[str]:
    """Return every canary found in the bot's files, the simulator's messages and the extra texts."""
    hits: list[Hit] = scan_tree(bot.root).hits
    for where, text in {**messages(bot), **(extra or {})}.items():
        hits += find_canaries(text, where)
    for token in bot.sim.issued_tokens():
        for where, text in {**messages(bot), **(extra or {})}.items():
            if token in text:
                hits.append(Hit("issued token", where, "(exact value)"))
    return [hit.line() for hit in hits]


def log_leaks(scanner: LogRecordScanner) -> list[str]:
    assert isinstance(scanner.stream, io.StringIO)
    hits = find_canaries(scanner.stream.getvalue(), "production log") + scanner.raw_hits
    return [hit.line() for hit in hits]


def ledger_dump(bot: BotEnv) -> str:
    connection = sqlite3.connect(bot.state_dir / "ledger.sqlite3")
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()


def cli_texts(result: Any, label: str) -> dict[str, str]:
    return {f"{label} stdout": result.stdout, f"{label} stderr": result.stderr}


# Passes


def test_pass_outputs_masked(bot: BotEnv, leaky_http: LocalHttpServer, logs: LogRecordScanner) -> None:
    solved = bot.ticket("dump", SOLVED.format(url=leaky_http.url("")))
    failing = bot.ticket("echo", FAILING.format(url=leaky_http.url("")))
    invalid = bot.ticket("typo", INVALID.format(url=leaky_http.url("")))

    summary = bot.run()

    assert [outcome.outcome for outcome in summary.outcomes] == ["solved", "pending", "pending"]
    assert leaks(bot, {"ledger": ledger_dump(bot), "summary": json.dumps(summary.as_dict())}) == []
    assert log_leaks(logs) == []
    assert logs.records > 0
    # The canaries reached glpibot and were masked, in the solution and in the failure's follow-up.
    assert MASK in bot.sim.solutions(solved)[0]["content"]
    assert MASK in bot.sim.followups(failing)[-1]["content"]
    assert MASK in (bot.artifact_dir / f"ticket-{solved}.md").read_text()
    assert MASK in (bot.artifact_dir / f"ticket-{failing}.md").read_text()
    assert "expect_staus" in bot.sim.followups(invalid)[-1]["content"]
    assert "authorization" not in leaky_http.requests[-1].headers


def test_remote_output_masked(bot: BotEnv, sshd: SshdHandle, logs: LogRecordScanner) -> None:
    status_text = f"● wiki.service - Wiki\n     Active: active (running)\n{SECRET_LINES}\n"
    units = {"wiki.service": {"LoadState": "loaded", "ActiveState": "active", "SubState": "running", "status_text": status_text}}
    sshd.set_scenario("systemctl-units.json", json.dumps(units))
    bot.overrides["hosts"] = {"svc-auto": sshd.host_entry(key_file=str(sshd.encrypted_key_path))}
    bot.overrides["actions"] = {
        "systemd_remote": {"allowed_units": {"svc-auto": ["wiki.service"]}, "operations": ["status"]}
    }
    ticket = bot.ticket("wiki status", REMOTE_STATUS)

    result = bot.cli("poll", "--config", str(bot.write_config()), "--json", "--debug")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["outcomes"][0]["outcome"] == "solved"
    assert leaks(bot, {"ledger": ledger_dump(bot), **cli_texts(result, "poll")}) == []
    assert MASK in bot.sim.solutions(ticket)[0]["content"]
    assert any(call[0] == "systemctl" and "status" in call for call in sshd.calls())


def test_token_renewal_mid_pass(bot: BotEnv, leaky_http: LocalHttpServer) -> None:
    bot.ticket("dump", SOLVED.format(url=leaky_http.url("")))
    bot.sim.add_fault(Fault(method="POST", path="/Followup$", unauthorized=True))

    result = bot.cli("poll", "--config", str(bot.write_config()), "--json", "--debug")

    assert result.returncode == 0, result.stderr
    grants = [request.form["grant_type"] for request in bot.sim.requests if request.path == "/token" and request.form]
    assert grants == ["password", "refresh_token"]
    tokens = bot.sim.issued_tokens()
    assert len(tokens) == 4  # the first pair, then the pair from the refresh grant
    assert leaks(bot, {"ledger": ledger_dump(bot), **cli_texts(result, "poll")}) == []
    cache = bot.state_dir / "token.json"
    assert oct(cache.stat().st_mode & 0o777) == "0o600"
    assert json.loads(cache.read_text())["access_token"] == tokens[2]


def test_rejected_password_names_user(bot: BotEnv) -> None:
    bot.sim.users["homelab-bot"] = (7, "another-password")
    config = str(bot.write_config())

    result = bot.cli("poll", "--config", config, "--json", env={"GLPIBOT_GLPI_PASSWORD": canaries.BOT_PASSWORD})

    assert result.returncode == 3
    error = json.loads(result.stdout)["error"]
    assert "'homelab-bot'" in error
    assert "password" in error
    assert leaks(bot, cli_texts(result, "poll")) == []


def test_rejected_client_secret_names_client(bot: BotEnv) -> None:
    bot.sim.oauth.client_secret = "another-secret"

    result = bot.cli("poll", "--config", str(bot.write_config()))

    assert result.returncode == 3
    assert f"'{bot.sim.client_id}'" in result.stderr
    assert "invalid_client" in result.stderr
    assert leaks(bot, cli_texts(result, "poll")) == []


def test_missing_secret_names_source(bot: BotEnv, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "glpi-client-secret").write_text(canaries.CLIENT_SECRET + "\n")
    environment: dict[str, str | None] = {
        "GLPIBOT_GLPI_PASSWORD": None,
        "GLPIBOT_GLPI_CLIENT_SECRET": None,
        "CREDENTIALS_DIRECTORY": str(credentials),
    }

    result = bot.cli("poll", "--config", str(bot.write_config()), env=environment)

    assert result.returncode == 2
    assert "GLPIBOT_GLPI_PASSWORD" in result.stderr
    assert "'glpi-password'" in result.stderr
    assert leaks(bot, cli_texts(result, "poll")) == []


def test_memory_token_echo_masked(
    bot: BotEnv, echoing_memory_service: _MemoryServer, leaky_http: LocalHttpServer, logs: LogRecordScanner
) -> None:
    port = echoing_memory_service.server_address[1]
    bot.overrides["memory"] = {"sink": "http", "url": f"http://127.0.0.1:{port}/records", "timeout_s": 5}
    bot.ticket("dump", SOLVED.format(url=leaky_http.url("")))

    summary = bot.run()

    assert summary.outcomes[0].outcome == "solved"
    assert echoing_memory_service.authorizations == [f"Bearer {canaries.MEMORY_TOKEN}"]
    dump = ledger_dump(bot)
    assert "HTTP 500" in dump
    assert leaks(bot, {"ledger": dump}) == []
    assert log_leaks(logs) == []


# Command outputs


def test_json_outputs_masked(bot: BotEnv, leaky_http: LocalHttpServer, tmp_path: Path) -> None:
    bot.ticket("dump", SOLVED.format(url=leaky_http.url("")))
    failing = bot.ticket("echo", FAILING.format(url=leaky_http.url("")))
    config = str(bot.write_config())
    spec = tmp_path / "spec.yaml"
    spec.write_text(INVALID.format(url=leaky_http.url("")))

    runs = {
        "poll": bot.cli("poll", "--config", config, "--json", "--debug"),
        "process-ticket": bot.cli("process-ticket", str(failing), "--config", config, "--json", "--force"),
        "validate-spec": bot.cli("validate-spec", str(spec), "--config", config, "--json"),
        "doctor": bot.cli("doctor", "--config", config, "--json"),
        "doctor text": bot.cli("doctor", "--config", config),
        "dry run": bot.cli("poll", "--config", config, "--dry-run", "--json"),
    }

    texts: dict[str, str] = {}
    for label, result in runs.items():
        texts.update(cli_texts(result, label))
    assert leaks(bot, texts) == []
    assert json.loads(runs["poll"].stdout)["outcomes"][0]["outcome"] == "solved"
    assert json.loads(runs["validate-spec"].stdout)["valid"] is False
    assert all(check["ok"] for check in json.loads(runs["doctor"].stdout))
    assert "GLPIBOT_GLPI_PASSWORD" in runs["doctor text"].stdout


def test_internal_error_traceback_masked(bot: BotEnv) -> None:
    from glpibot.cli import app

    (bot.state_dir / "ledger.sqlite3").mkdir(parents=True)

    result = bot.cli("poll", "--config", str(bot.write_config()), "--debug")

    assert result.returncode == 2
    assert "cannot open the ledger" in result.stderr
    assert leaks(bot, cli_texts(result, "poll")) == []
    assert app.pretty_exceptions_show_locals is False


def test_doctor_over_ssh_masked(bot: BotEnv, sshd: SshdHandle) -> None:
    bot.overrides["hosts"] = {"svc-auto": sshd.host_entry(key_file=str(sshd.encrypted_key_path))}
    config = str(bot.write_config())

    with_passphrase = bot.cli("doctor", "--config", config, "--json")
    wrong_passphrase = bot.cli("doctor", "--config", config, env={"GLPIBOT_SSH_KEY_PASSPHRASE": canaries.BOT_PASSWORD})

    checks = {check["check"]: check for check in json.loads(with_passphrase.stdout)}
    assert checks["host svc-auto key authentication"]["ok"] is True
    assert "passphrase is wrong" in wrong_passphrase.stdout
    texts = {**cli_texts(with_passphrase, "doctor"), **cli_texts(wrong_passphrase, "doctor wrong passphrase")}
    assert leaks(bot, texts) == []


# Exception text


def error_texts(errors: list[BaseException]) -> dict[str, str]:
    texts = {}
    for index, error in enumerate(errors):
        texts[f"str of error {index} ({type(error).__name__})"] = str(error)
        texts[f"repr of error {index} ({type(error).__name__})"] = repr(error)
        texts[f"args of error {index}"] = repr(error.args)
    return texts


def test_glpi_errors_masked(bot: BotEnv, tmp_path: Path) -> None:
    client = GlpiClient(
        settings_for(bot.sim),
        client_secret=canaries.CLIENT_SECRET,
        password=canaries.BOT_PASSWORD,
        token_cache=tmp_path / "glpi-token.json",
        backoff_s=0.01,
    )
    errors: list[BaseException] = []
    client.user_id()
    token = bot.sim.issued_tokens()[0]
    # GLPI returns an error that quotes the request's token and the bot's password.
    body = {"status": "ERROR", "title": f"bad request for Bearer {token}", "detail": f"password={canaries.BOT_PASSWORD}"}
    bot.sim.add_fault(Fault(method="GET", path="/Ticket", status=400, body=body))
    bot.sim.add_fault(Fault(method="PATCH", times=-1, unauthorized=True))
    for call in (lambda: client.get_ticket(1), lambda: client.set_status(1, 4)):
        with pytest.raises(GlpiError) as caught:
            call()
        errors.append(caught.value)
    bot.sim.users["homelab-bot"] = (7, "another-password")
    with pytest.raises(GlpiAuthError) as rejected:
        GlpiClient(settings_for(bot.sim), client_secret=canaries.CLIENT_SECRET, password=canaries.BOT_PASSWORD).user_id()
    errors.append(rejected.value)
    client.close()

    texts = error_texts(errors)
    assert [hit.line() for where, text in texts.items() for hit in find_canaries(text, where)] == []
    assert "homelab-bot" in str(rejected.value)
    assert MASK in str(errors[0])
    assert len(bot.sim.issued_tokens()) >= 4


def test_remote_errors_masked(sshd: SshdHandle, tmp_path: Path) -> None:
    other_key = tmp_path / "other_key"
    write_private_key(other_key, passphrase="a different passphrase")
    config = sshd.config(
        hosts={
            "wrong-passphrase": {"key_file": str(other_key)},
            "no-server": {"port": 9, "key_file": str(sshd.encrypted_key_path)},
            "unknown-host-key": {"key_file": str(sshd.encrypted_key_path), "known_hosts": str(tmp_path / "empty")},
        }
    )
    (tmp_path / "empty").write_text("")
    errors: list[BaseException] = []

    with SshPool(config, key_passphrase=canaries.SSH_KEY_PASSPHRASE) as pool:
        for host in config.hosts:
            with pytest.raises(RemoteError) as caught:
                pool.session(host)
            errors.append(caught.value)
    with SshPool(config) as pool:
        with pytest.raises(RemoteError) as missing:
            pool.session("no-server")
        errors.append(missing.value)

    texts = error_texts(errors)
    assert [hit.line() for where, text in texts.items() for hit in find_canaries(text, where)] == []
    assert "passphrase is wrong" in str(errors[0])
    assert "no passphrase is set" in str(errors[3])
    assert redact(canaries.SSH_KEY_PASSPHRASE) == MASK


def test_object_reprs_hide_secrets(bot: BotEnv) -> None:
    config = bot.config()
    client = GlpiClient(config.glpi, client_secret=canaries.CLIENT_SECRET, password=canaries.BOT_PASSWORD)
    access, refresh = canaries.new_access_token(), canaries.new_refresh_token()
    effects = Effects(None, client, config, bot_user_id=7, memory_token=canaries.MEMORY_TOKEN)  # type: ignore[arg-type]
    session = PassSession(
        config=config,
        client=client,
        ledger=None,  # type: ignore[arg-type]
        renderer=None,  # type: ignore[arg-type]
        effects=effects,
        bot_user_id=7,
        category_id=2,
        deadline=0.0,
        ssh_key_passphrase=canaries.SSH_KEY_PASSPHRASE,
    )
    pool = SshPool(config, key_passphrase=canaries.SSH_KEY_PASSPHRASE)

    reprs = {
        "client": repr(client),
        "token": repr(Token(access, refresh, 0.0)),
        "effects": repr(effects),
        "session": repr(session),
        "pool": repr(pool),
    }
    client.close()

    assert [hit.line() for where, text in reprs.items() for hit in find_canaries(text, where)] == []
    assert "deadline=0.0" in reprs["session"]
