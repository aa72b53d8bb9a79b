"""OAuth token handling: the cache shared by passes, renewal before expiry and after a rejection, and secrecy."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any, Callable

import pytest
import requests

from glpibot.errors import GlpiAuthError, GlpiError
from glpibot.glpi.client import GlpiClient
from glpibot.testing import Fault, GlpiSimulator
from tests.fixtures_glpi import BOT_LOGIN, settings_for

ClientFactory = Callable[..., GlpiClient]
DATA = Path(__file__).parent / "data" / "cases" / "token-expiry-exchanges.json"


class FakeClock:
    """A settable wall clock, in seconds."""

    def __init__(self, now: float = 1_900_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def grants(sim: GlpiSimulator) -> list[str]:
    """Return the grant type of every token request, in order."""
    return [request.form["grant_type"] if request.form else "?" for request in sim.requests if request.path == "/token"]


def rejections(sim: GlpiSimulator) -> list[int]:
    return [request.status or 0 for request in sim.requests if request.status in (400, 401)]


@pytest.fixture
def plain_sim() -> Any:
    """A simulator whose token responses contain no refresh token."""
    sim = GlpiSimulator(issue_refresh_token=False, token_lifetime_s=300).start()
    yield sim
    sim.stop()


# The cache


def test_cache_shared_by_clients(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory, tmp_path: Path) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x")
    glpi_client_factory().user_id()
    second = glpi_client_factory()
    second.get_ticket(ticket_id)
    assert grants(glpi_sim) == ["password"]
    assert second.request_count == 1


def test_cache_file_format(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory, tmp_path: Path) -> None:
    clock = FakeClock()
    glpi_client_factory(clock=clock).user_id()
    path = tmp_path / "glpi-token.json"
    data = json.loads(path.read_text())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert data["access_token"] in glpi_sim.issued_tokens()
    assert data["refresh_token"] in glpi_sim.issued_tokens()
    assert data["expires_at"] == clock.now + 3600
    assert [entry.name for entry in tmp_path.iterdir()] == ["glpi-token.json"]


def test_cache_of_other_user_ignored(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    glpi_client_factory(settings=settings_for(glpi_sim, username="tech"), password="tech").user_id()
    assert glpi_client_factory().user_id() == 7
    assert grants(glpi_sim) == ["password", "password"]


def test_corrupt_cache_ignored(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory, tmp_path: Path) -> None:
    (tmp_path / "glpi-token.json").write_text("{not json")
    assert glpi_client_factory().user_id() == 7
    assert json.loads((tmp_path / "glpi-token.json").read_text())["access_token"]


def test_cache_expiry_renews_before_use(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    clock = FakeClock()
    glpi_client_factory(clock=clock).user_id()
    clock.now += 3600 - 30  # 30 s left: under the 60 s margin
    glpi_client_factory(clock=clock).user_id()
    assert grants(glpi_sim) == ["password", "refresh_token"]
    assert rejections(glpi_sim) == []


def test_cache_reused_until_margin(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    clock = FakeClock()
    glpi_client_factory(clock=clock).user_id()
    clock.now += 3600 - 90
    glpi_client_factory(clock=clock).user_id()
    assert grants(glpi_sim) == ["password"]


# A token rejected in the middle of a pass


def test_rejected_token_one_new_login(plain_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    ticket_id = plain_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    client = glpi_client_factory(plain_sim)
    client.search_tickets(2, [1, 2])
    client.add_followup(ticket_id, "<p>claimed</p>")
    plain_sim.expire_tokens()
    client.set_status(ticket_id, 4)
    client.get_ticket(ticket_id)
    patches = [request.status for request in plain_sim.requests if request.method == "PATCH"]
    assert grants(plain_sim) == ["password", "password"]
    assert patches == [400, 200]
    assert len(plain_sim.followups(ticket_id)) == 1


def test_unauthorized_resends_write_once(plain_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    ticket_id = plain_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    plain_sim.add_fault(Fault(method="POST", path="/Followup$", unauthorized=True))
    followup_id = glpi_client_factory(plain_sim).add_followup(ticket_id, "<p>claimed</p>")
    posts = [request.status for request in plain_sim.requests if request.path.endswith("/Followup")]
    assert grants(plain_sim) == ["password", "password"]
    assert posts == [401, 200]
    assert [item["id"] for item in plain_sim.followups(ticket_id)] == [followup_id]


def test_new_token_rejected_too(plain_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    ticket_id = plain_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    client = glpi_client_factory(plain_sim)
    client.add_followup(ticket_id, "<p>claimed</p>")
    plain_sim.add_fault(Fault(method="PATCH", times=-1, unauthorized=True))
    with pytest.raises(GlpiAuthError, match="freshly issued token"):
        client.set_status(ticket_id, 2)
    with pytest.raises(GlpiAuthError):
        client.get_ticket(ticket_id)
    assert grants(plain_sim) == ["password", "password"]
    assert plain_sim.count("GET", f"/Assistance/Ticket/{ticket_id}") == 0
    assert len(plain_sim.followups(ticket_id)) == 1


def test_relogin_credentials_rejected(plain_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    ticket_id = plain_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    password = plain_sim.users[BOT_LOGIN][1]
    client = glpi_client_factory(plain_sim)
    client.add_followup(ticket_id, "<p>claimed</p>")
    plain_sim.users[BOT_LOGIN] = (7, "changed-by-an-admin")
    plain_sim.expire_tokens()
    with pytest.raises(GlpiAuthError) as caught:
        client.set_status(ticket_id, 2)
    text = str(caught.value) + repr(caught.value)
    assert "GLPI rejected the credentials" in text
    assert f"'{BOT_LOGIN}'" in text
    assert plain_sim.client_id in text
    assert password not in text
    assert plain_sim.client_secret not in text
    assert grants(plain_sim) == ["password", "password"]


def test_short_token_renewed_before_use(glpi_client_factory: ClientFactory) -> None:
    with GlpiSimulator(token_lifetime_s=30, issue_refresh_token=False) as sim:
        clock = FakeClock()
        client = glpi_client_factory(sim, clock=clock)
        client.user_id()
        clock.now += 25  # 5 s left of 30
        client.search_tickets(2, [1, 2])
        assert grants(sim) == ["password", "password"]
        assert rejections(sim) == []


def test_refresh_token_used_once(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    client = glpi_client_factory()
    client.add_followup(ticket_id, "<p>claimed</p>")
    glpi_sim.expire_tokens()
    client.set_status(ticket_id, 4)
    assert grants(glpi_sim) == ["password", "refresh_token"]
    assert glpi_sim.ticket(ticket_id)["status"]["id"] == 4


def test_rejected_refresh_falls_back(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    client = glpi_client_factory()
    client.add_followup(ticket_id, "<p>claimed</p>")
    glpi_sim.expire_tokens()
    glpi_sim.revoke_refresh_tokens()
    client.set_status(ticket_id, 4)
    patches = [request.status for request in glpi_sim.requests if request.method == "PATCH"]
    assert grants(glpi_sim) == ["password", "refresh_token", "password"]
    assert patches == [400, 200]
    assert len(glpi_sim.followups(ticket_id)) == 1


# Login failures


def test_bad_client_secret(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    with pytest.raises(GlpiAuthError) as caught:
        glpi_client_factory(client_secret="not-the-secret").user_id()
    assert caught.value.http_status == 401
    assert caught.value.error_code == "invalid_client"
    assert glpi_sim.client_id in str(caught.value)
    assert "not-the-secret" not in str(caught.value)


def test_token_endpoint_5xx_is_server_problem(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    glpi_sim.add_fault(Fault(path="^/token$", status=500))
    with pytest.raises(GlpiError) as caught:
        glpi_client_factory().user_id()
    assert not isinstance(caught.value, GlpiAuthError)
    assert "not rejected credentials" in str(caught.value)
    assert grants(glpi_sim) == ["password"]


def test_recorded_rejection_bodies(plain_sim: GlpiSimulator) -> None:
    """The simulator's rejections carry the bodies a real GLPI sent in the recorded exchanges."""
    script = json.loads(DATA.read_text())
    recorded_401 = next(step for step in script["exchanges"] if step["response"]["status"] == 401)
    plain_sim.add_fault(Fault(path="^/session$", unauthorized=True))
    answer = requests.get(f"{plain_sim.url}/api.php/session", headers={"Authorization": "Bearer x"}, timeout=5)
    bad_login = requests.post(
        f"{plain_sim.url}/api.php/token",
        data={"grant_type": "password", "client_id": plain_sim.client_id, "client_secret": plain_sim.client_secret,
              "username": BOT_LOGIN, "password": "wrong", "scope": "api"},
        timeout=5,
    )
    assert answer.json() == recorded_401["response"]["json"]
    assert bad_login.json() == json.loads(script["variant_C"]["change"].split("answers 400 ", 1)[1])


# Secrets


def test_no_secret_in_errors_or_logs(
    glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password = glpi_sim.users[BOT_LOGIN][1]
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    errors: list[BaseException] = []
    client = glpi_client_factory()
    client.add_followup(ticket_id, "<p>claimed</p>")
    glpi_sim.expire_tokens()
    client.set_status(ticket_id, 4)
    glpi_sim.add_fault(Fault(method="GET", times=-1, status=503))
    for call in (lambda: client.get_ticket(ticket_id), lambda: glpi_client_factory(password="wrong-password", token_cache=None).user_id()):
        try:
            call()
        except GlpiError as exc:
            errors.append(exc)
    glpi_sim.clear_faults()
    glpi_sim.add_fault(Fault(method="PATCH", times=-1, unauthorized=True))
    try:
        client.set_status(ticket_id, 2)
    except GlpiError as exc:
        errors.append(exc)

    texts = [record.getMessage() for record in caplog.records] + [str(error) for error in errors]
    texts += [repr(error) for error in errors] + [repr(client)]
    secrets = [password, "wrong-password", glpi_sim.client_secret] + glpi_sim.issued_tokens()
    assert len(errors) == 3
    assert len(glpi_sim.issued_tokens()) >= 4
    for secret in secrets:
        assert not [text for text in texts if secret in text], "a secret leaked"
