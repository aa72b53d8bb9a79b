"""The GLPI simulator over real HTTP: tokens, lists, writes, GLPI's quirks and fault injection."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import requests

from glpibot.testing import Fault, GlpiSimulator, canaries, seed_demo

BOT_PASSWORD = canaries.BOT_PASSWORD


def get_token(sim: GlpiSimulator, **overrides: str) -> requests.Response:
    form = {
        "grant_type": "password",
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
        "username": "homelab-bot",
        "password": BOT_PASSWORD,
        "scope": "api",
    }
    form.update(overrides)
    return requests.post(f"{sim.url}/api.php/token", data=form, timeout=5)


def bearer(sim: GlpiSimulator, **overrides: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + get_token(sim, **overrides).json()["access_token"]}


def call(sim: GlpiSimulator, method: str, path: str, auth: dict[str, str] | None, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("timeout", 5)
    return requests.request(method, f"{sim.url}/api.php{path}", headers=auth or {}, **kwargs)


@pytest.fixture
def auth(glpi_sim: GlpiSimulator) -> dict[str, str]:
    return bearer(glpi_sim)


# Tokens and authentication


def test_token_password_grant(glpi_sim: GlpiSimulator) -> None:
    response = get_token(glpi_sim)
    body = response.json()
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"] in glpi_sim.issued_tokens()
    assert body["refresh_token"] in glpi_sim.issued_tokens()


def test_token_json_body(glpi_sim: GlpiSimulator) -> None:
    form = {
        "grant_type": "password",
        "client_id": glpi_sim.client_id,
        "client_secret": glpi_sim.client_secret,
        "username": "tech",
        "password": "tech",
        "scope": "api",
    }
    response = requests.post(f"{glpi_sim.url}/api.php/token", data=json.dumps(form), headers={"Content-Type": "application/json"}, timeout=5)
    token = response.json()["access_token"]
    session = call(glpi_sim, "GET", "/session", {"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert session.json()["user_id"] == 4


def test_token_without_scope_forbidden(glpi_sim: GlpiSimulator) -> None:
    token = get_token(glpi_sim, scope="")
    response = call(glpi_sim, "GET", "/Assistance/Ticket", {"Authorization": "Bearer " + token.json()["access_token"]})
    assert token.status_code == 200
    assert response.status_code == 403
    assert response.json()["status"] == "ERROR_RIGHT_MISSING"
    assert response.json()["detail"] == "You do not have the required scope(s) to access this endpoint."


def test_token_bad_password(glpi_sim: GlpiSimulator) -> None:
    response = get_token(glpi_sim, password="wrong")
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "The user credentials were incorrect."}


def test_token_bad_client(glpi_sim: GlpiSimulator) -> None:
    response = get_token(glpi_sim, client_secret="wrong")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_refresh_grant_rotates(glpi_sim: GlpiSimulator) -> None:
    refresh = get_token(glpi_sim).json()["refresh_token"]
    first = get_token(glpi_sim, grant_type="refresh_token", refresh_token=refresh)
    again = get_token(glpi_sim, grant_type="refresh_token", refresh_token=refresh)
    assert first.status_code == 200
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_revoked_refresh_token(glpi_sim: GlpiSimulator) -> None:
    refresh = get_token(glpi_sim).json()["refresh_token"]
    glpi_sim.revoke_refresh_tokens()
    response = get_token(glpi_sim, grant_type="refresh_token", refresh_token=refresh)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_no_refresh_token_when_disabled() -> None:
    with GlpiSimulator(issue_refresh_token=False, token_lifetime_s=300) as sim:
        body = get_token(sim).json()
    assert "refresh_token" not in body
    assert body["expires_in"] == 300


def test_missing_authorization(glpi_sim: GlpiSimulator) -> None:
    response = call(glpi_sim, "GET", "/Assistance/Ticket", None)
    assert response.status_code == 401
    assert response.json()["status"] == "ERROR_UNAUTHENTICATED"


def test_garbage_token(glpi_sim: GlpiSimulator) -> None:
    response = call(glpi_sim, "GET", "/session", {"Authorization": "Bearer not-a-token"})
    assert response.status_code == 400
    assert response.json()["title"] == "Invalid OAuth token"


def test_expired_tokens_refused(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    glpi_sim.expire_tokens()
    response = call(glpi_sim, "GET", "/session", auth)
    assert response.status_code == 400
    assert response.json()["status"] == "ERROR_INVALID_PARAMETER"
    assert response.json()["title"] == "Invalid OAuth token"


def test_session_and_versions(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    for prefix in ("", "/v2", "/v2.0", "/v2.1", "/v2.2"):
        response = call(glpi_sim, "GET", f"{prefix}/session", auth)
        assert response.status_code == 200, prefix
        assert response.json()["user_id"] == 7, prefix
    assert glpi_sim.requests[-1].path == "/session"
    assert glpi_sim.requests[-1].version == "v2.2"


# Lists, filters and paging


def test_filter_category_and_status(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    expected_id = glpi_sim.add_ticket(name="a", content="x", assigned_user_ids=[7])
    glpi_sim.add_ticket(name="b", content="x", status=4)
    glpi_sim.add_ticket(name="c", content="x", category_id=1)
    glpi_sim.add_ticket(name="d", content="x", is_deleted=True)
    query = {"filter": "category.id==2;status.id=in=(1,2);is_deleted==false", "limit": 50}
    response = call(glpi_sim, "GET", "/Assistance/Ticket", auth, params=query)
    assert response.status_code == 200
    assert [row["id"] for row in response.json()] == [expected_id]
    assert response.headers["Content-Range"] == "0-0/1"


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("name!=a", ["backup", "c"]),
        ("status.id=out=(1)", ["c"]),
        ("name=like=*ack*", ["backup"]),
        ("name=like=*ACK*", []),
        ("name=ilike=*ACK*", ["backup"]),
        ("name==a,name==c", ["a", "c"]),
        ("category.id==1", []),
    ],
)
def test_filter_operators(glpi_sim: GlpiSimulator, auth: dict[str, str], text: str, names: list[str]) -> None:
    glpi_sim.add_ticket(name="a", content="x")
    glpi_sim.add_ticket(name="backup", content="x")
    glpi_sim.add_ticket(name="c", content="x", status=4)
    response = call(glpi_sim, "GET", "/Assistance/Ticket", auth, params={"filter": text, "limit": 10})
    assert response.status_code == 200
    assert [row["name"] for row in response.json()] == names


def test_filter_unknown_property(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    response = call(glpi_sim, "GET", "/Assistance/Ticket", auth, params={"filter": "colour==red"})
    assert response.status_code == 400
    assert response.json()["status"] == "ERROR_INVALID_PARAMETER"


def test_filter_on_team_fails(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    response = call(glpi_sim, "GET", "/Assistance/Ticket", auth, params={"filter": "team.id==7"})
    assert response.status_code == 500
    assert response.content == b""


def test_paging_partial_content(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    for index in range(5):
        glpi_sim.add_ticket(name=f"t{index}", content="x")
    first = call(glpi_sim, "GET", "/Assistance/Ticket", auth, params={"start": 0, "limit": 2})
    last = call(glpi_sim, "GET", "/Assistance/Ticket", auth, params={"start": 4, "limit": 2})
    assert first.status_code == 206
    assert first.headers["Content-Range"] == "0-1/5"
    assert last.status_code == 200
    assert last.headers["Content-Range"] == "4-4/5"
    assert [row["name"] for row in last.json()] == ["t4"]


def test_paging_without_limit_returns_all(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    for index in range(120):
        glpi_sim.add_ticket(name=f"t{index}", content="x")
    response = call(glpi_sim, "GET", "/Assistance/Ticket", auth)
    assert response.status_code == 200
    assert len(response.json()) == 120


def test_empty_list_content_range(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    response = call(glpi_sim, "GET", "/Assistance/Ticket", auth, params={"limit": 10})
    assert response.status_code == 200
    assert response.json() == []
    assert response.headers["Content-Range"] == "0--1/0"


def test_sort_descending(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    ids = [glpi_sim.add_ticket(name=f"t{index}", content="x") for index in range(3)]
    response = call(glpi_sim, "GET", "/Assistance/Ticket", auth, params={"sort": "id:desc", "limit": 10})
    bad = call(glpi_sim, "GET", "/Assistance/Ticket", auth, params={"sort": "colour"})
    assert [row["id"] for row in response.json()] == ids[::-1]
    assert bad.status_code == 400


def test_category_by_completename(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    response = call(
        glpi_sim, "GET", "/Dropdowns/ITILCategory", auth, params={"filter": "completename==Automation > Homelab Bot"}
    )
    rows = response.json()
    assert [row["id"] for row in rows] == [2]
    assert rows[0]["completename"] == "Automation > Homelab Bot"
    assert rows[0]["parent"] == {"id": 1, "name": "Automation"}


def test_category_unfiltered_list_bug(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    rows = call(glpi_sim, "GET", "/Dropdowns/ITILCategory", auth).json()
    single = call(glpi_sim, "GET", "/Dropdowns/ITILCategory/1", auth).json()
    assert rows[0]["id"] == 1
    assert rows[0]["completename"] is None
    assert "date_creation" not in rows[0]
    assert single["completename"] == "Automation"


def test_user_by_username(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    response = call(glpi_sim, "GET", "/Administration/User", auth, params={"filter": "username==homelab-bot"})
    assert [row["id"] for row in response.json()] == [7]


# Writes and GLPI's side effects


def test_create_ticket_response(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    body = {"name": "disk", "content": "a & <b>b</b>\nc", "category": {"id": 2}}
    response = call(glpi_sim, "POST", "/Assistance/Ticket", auth, json=body)
    ticket = glpi_sim.ticket(response.json()["id"])
    assert response.status_code == 200
    assert response.headers["Location"] == f"/Assistance/Ticket/{ticket['id']}"
    assert response.json()["href"] == f"/Assistance/Ticket/{ticket['id']}"
    assert ticket["content"] == "a & <b>b</b>\nc"
    assert ticket["category"] == {"id": 2, "name": "Homelab Bot"}
    assert ticket["team"] == []


def test_charset_json_body_ignored(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    headers = {**auth, "Content-Type": "application/json; charset=utf-8"}
    data = json.dumps({"name": "lost", "content": "x", "category": 2})
    response = call(glpi_sim, "POST", "/Assistance/Ticket", headers, data=data)
    ticket = glpi_sim.ticket(response.json()["id"])
    assert response.status_code == 200
    assert ticket["name"] == ""
    assert ticket["category"] is None
    assert glpi_sim.requests[-1].json is None


def test_patch_status_forms(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    as_int = call(glpi_sim, "PATCH", f"/Assistance/Ticket/{ticket_id}", auth, json={"status": 4})
    as_object = call(glpi_sim, "PATCH", f"/Assistance/Ticket/{ticket_id}", auth, json={"status": {"id": 5}})
    assert as_int.json()["status"] == {"id": 4, "name": "Pending"}
    assert as_int.json()["begin_waiting_date"] is not None
    assert as_object.json()["status"]["id"] == 5
    assert as_object.json()["date_solve"] is not None
    assert {"role": "assigned", "id": 7} in [{"role": m["role"], "id": m["id"]} for m in as_object.json()["team"]]


def test_patch_string_status_fails(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x")
    response = call(glpi_sim, "PATCH", f"/Assistance/Ticket/{ticket_id}", auth, json={"status": "solved"})
    assert response.status_code == 500
    assert response.content == b""
    assert glpi_sim.ticket(ticket_id)["status"]["id"] == 1


def test_unknown_ticket_not_found(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    response = call(glpi_sim, "GET", "/Assistance/Ticket/999", auth)
    assert response.status_code == 404
    assert response.json()["status"] == "ERROR_ITEM_NOT_FOUND"


def test_assignment_moves_to_processing(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    ticket_id = call(glpi_sim, "POST", "/Assistance/Ticket", auth, json={"name": "t", "content": "x"}).json()["id"]
    member = {"type": "User", "id": 7, "role": "assigned"}
    response = call(glpi_sim, "POST", f"/Assistance/Ticket/{ticket_id}/TeamMember", auth, json=member)
    team = call(glpi_sim, "GET", f"/Assistance/Ticket/{ticket_id}/TeamMember", auth).json()
    assert response.status_code == 201
    assert response.content == b""
    assert glpi_sim.ticket(ticket_id)["status"]["id"] == 2
    assert team == [
        {
            "role": "assigned",
            "name": "homelab-bot",
            "realname": None,
            "firstname": None,
            "display_name": "homelab-bot",
            "id": 7,
            "href": "/front/user.form.php?id=7",
        }
    ]


def test_seeded_assignment_moves_to_processing(glpi_sim: GlpiSimulator) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    assert glpi_sim.ticket(ticket_id)["status"]["id"] == 2
    assert {member["role"] for member in glpi_sim.ticket(ticket_id)["team"]} == {"requester", "assigned"}


def test_followup_routes(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    created = call(glpi_sim, "POST", f"/Assistance/Ticket/{ticket_id}/Timeline/Followup", auth, json={"content": "<p>hi</p>"})
    followup_id = created.json()["id"]
    wrapped = call(glpi_sim, "GET", f"/Assistance/Ticket/{ticket_id}/Timeline/Followup", auth).json()
    bare = call(glpi_sim, "GET", f"/Assistance/Ticket/{ticket_id}/Timeline/Followup/{followup_id}", auth).json()
    assert created.status_code == 200
    assert created.headers["Location"] == f"/Assistance/Ticket/{ticket_id}/Timeline/Followup/{followup_id}"
    assert wrapped[0]["type"] == "Followup"
    assert wrapped[0]["item"]["content"] == "<p>hi</p>"
    assert bare["user"] == {"id": 7, "name": "homelab-bot"}
    assert bare["date_creation"]
    assert glpi_sim.followups(ticket_id) == [bare]


def test_empty_followup_fails(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x")
    response = call(glpi_sim, "POST", f"/Assistance/Ticket/{ticket_id}/Timeline/Followup", auth, json={"content": ""})
    assert response.status_code == 500
    assert glpi_sim.followups(ticket_id) == []


def test_solution_solves(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    response = call(glpi_sim, "POST", f"/Assistance/Ticket/{ticket_id}/Timeline/Solution", auth, json={"content": "done"})
    timeline = call(glpi_sim, "GET", f"/Assistance/Ticket/{ticket_id}/Timeline", auth).json()
    assert response.status_code == 200
    assert glpi_sim.ticket(ticket_id)["status"]["id"] == 5
    assert [entry["type"] for entry in timeline] == ["Solution"]
    assert timeline[0]["item"]["status"] == 2
    assert glpi_sim.solutions(ticket_id)[0]["user"]["id"] == 7


def test_solution_auto_close(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7], entity_auto_close=True)
    call(glpi_sim, "POST", f"/Assistance/Ticket/{ticket_id}/Timeline/Solution", auth, json={"content": "done"})
    assert glpi_sim.ticket(ticket_id)["status"]["id"] == 6
    assert glpi_sim.ticket(ticket_id)["date_close"] is not None


def test_second_solution_fails(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    path = f"/Assistance/Ticket/{ticket_id}/Timeline/Solution"
    call(glpi_sim, "POST", path, auth, json={"content": "done"})
    second = call(glpi_sim, "POST", path, auth, json={"content": "again"})
    assert second.status_code == 500
    assert "already solved" in second.json()["additional_messages"][0]["message"]
    assert len(glpi_sim.solutions(ticket_id)) == 1


def test_timeline_grouped_by_type(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    call(glpi_sim, "POST", f"/Assistance/Ticket/{ticket_id}/Timeline/Followup", auth, json={"content": "one"})
    call(glpi_sim, "POST", f"/Assistance/Ticket/{ticket_id}/Timeline/Solution", auth, json={"content": "two"})
    glpi_sim.set_status(ticket_id, 2)
    call(glpi_sim, "POST", f"/Assistance/Ticket/{ticket_id}/Timeline/Followup", auth, json={"content": "three"})
    timeline = call(glpi_sim, "GET", f"/Assistance/Ticket/{ticket_id}/Timeline", auth).json()
    assert [entry["type"] for entry in timeline] == ["Followup", "Followup", "Solution"]
    assert glpi_sim.solutions(ticket_id)[0]["status"] == 4  # reopening refused the solution


def test_requester_followup_leaves_pending(glpi_sim: GlpiSimulator) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    glpi_sim.set_status(ticket_id, 4)
    glpi_sim.add_human_followup(ticket_id, "<p>fixed the config, try again</p>")
    assert glpi_sim.ticket(ticket_id)["status"]["id"] == 2


def test_bot_followup_keeps_pending(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    glpi_sim.set_status(ticket_id, 4)
    call(glpi_sim, "POST", f"/Assistance/Ticket/{ticket_id}/Timeline/Followup", auth, json={"content": "waiting"})
    assert glpi_sim.ticket(ticket_id)["status"]["id"] == 4


# Recording


def test_requests_recorded(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    glpi_sim.reset_requests()
    call(glpi_sim, "GET", "/v2/Assistance/Ticket", auth, params={"limit": "5"})
    call(glpi_sim, "GET", "/session", None)
    health = requests.get(f"{glpi_sim.url}/health", timeout=5)
    recorded = glpi_sim.requests
    assert health.text == "ok"
    assert glpi_sim.request_count == 2
    assert (recorded[0].method, recorded[0].path, recorded[0].query) == ("GET", "/Assistance/Ticket", {"limit": "5"})
    assert recorded[0].authorization is True
    assert recorded[1].authorization is False
    assert recorded[1].status == 401
    assert [request.path for request in glpi_sim.other_requests] == ["/health"]


# Faults


def test_fault_status_nth_and_times(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    glpi_sim.add_fault(Fault(method="GET", path="^/session$", nth=2, times=2, status=503, body="<h1>busy</h1>"))
    statuses = [call(glpi_sim, "GET", "/session", auth).status_code for _ in range(4)]
    assert statuses == [200, 503, 503, 200]


def test_fault_forever(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    glpi_sim.add_fault(Fault(path="/session", times=-1, status=502))
    statuses = [call(glpi_sim, "GET", "/session", auth).status_code for _ in range(3)]
    glpi_sim.clear_faults()
    assert statuses == [502, 502, 502]
    assert call(glpi_sim, "GET", "/session", auth).status_code == 200


def test_fault_drop(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    glpi_sim.add_fault(Fault(path="/session", drop=True))
    with pytest.raises(requests.ConnectionError):
        call(glpi_sim, "GET", "/session", auth)
    assert call(glpi_sim, "GET", "/session", auth).status_code == 200


def test_fault_delay(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    glpi_sim.add_fault(Fault(path="/session", delay_s=1.0))
    with pytest.raises(requests.ReadTimeout):
        call(glpi_sim, "GET", "/session", auth, timeout=0.2)


def test_fault_hold(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    release = threading.Event()
    glpi_sim.add_fault(Fault(path="/session", hold=release))
    results: list[int] = []
    worker = threading.Thread(target=lambda: results.append(call(glpi_sim, "GET", "/session", auth).status_code))
    worker.start()
    worker.join(0.3)
    held = worker.is_alive()
    release.set()
    worker.join(10)
    assert held
    assert results == [200]


def test_fault_hold_before_apply(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    release, reached = threading.Event(), threading.Event()
    glpi_sim.add_fault(Fault(method="POST", path="/Followup$", hold=release, reached=reached))
    path = f"/Assistance/Ticket/{ticket_id}/Timeline/Followup"
    results: list[int] = []

    def post() -> None:
        results.append(call(glpi_sim, "POST", path, auth, json={"content": "one"}).status_code)

    worker = threading.Thread(target=post)
    worker.start()
    arrived = reached.wait(10)
    written_while_held = glpi_sim.followups(ticket_id)
    release.set()
    worker.join(10)
    assert arrived
    assert written_while_held == []
    assert results == [200]
    assert [item["content"] for item in glpi_sim.followups(ticket_id)] == ["one"]


def test_fault_hold_after_apply(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    release, reached = threading.Event(), threading.Event()
    fault = Fault(method="POST", path="/Followup$", hold=release, hold_after_apply=True, reached=reached)
    glpi_sim.add_fault(fault)
    path = f"/Assistance/Ticket/{ticket_id}/Timeline/Followup"
    results: list[int] = []

    def post() -> None:
        results.append(call(glpi_sim, "POST", path, auth, json={"content": "one"}).status_code)

    worker = threading.Thread(target=post)
    worker.start()
    arrived = reached.wait(10)
    written_while_held = [item["content"] for item in glpi_sim.followups(ticket_id)]
    answered_while_held = list(results)
    release.set()
    worker.join(10)
    assert arrived
    assert written_while_held == ["one"]
    assert answered_while_held == []
    assert results == [200]


def test_fault_hold_after_apply_stop_drops() -> None:
    sim = GlpiSimulator().start()
    ticket_id = sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    reached = threading.Event()
    hold = threading.Event()
    sim.add_fault(Fault(method="POST", path="/Followup$", hold=hold, hold_after_apply=True, reached=reached))
    errors: list[BaseException] = []

    path = f"/Assistance/Ticket/{ticket_id}/Timeline/Followup"
    auth = bearer(sim)

    def post() -> None:
        try:
            call(sim, "POST", path, auth, json={"content": "one"}, timeout=10)
        except requests.RequestException as exc:
            errors.append(exc)

    worker = threading.Thread(target=post)
    worker.start()
    arrived = reached.wait(10)
    sim.stop()
    worker.join(10)
    assert arrived
    assert len(errors) == 1
    assert [item["content"] for item in sim.followups(ticket_id)] == ["one"]


def test_fault_reached_without_hold(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    reached = threading.Event()
    glpi_sim.add_fault(Fault(path="/session", nth=2, reached=reached))
    call(glpi_sim, "GET", "/session", auth)
    after_first = reached.is_set()
    call(glpi_sim, "GET", "/session", auth)
    assert not after_first
    assert reached.is_set()


def test_fault_hold_after_apply_needs_hold() -> None:
    with pytest.raises(ValueError):
        Fault(hold_after_apply=True)


def test_fault_apply_then_fail(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    glpi_sim.add_fault(Fault(method="POST", path="/Followup$", status=504, apply_then_fail=True))
    response = call(glpi_sim, "POST", f"/Assistance/Ticket/{ticket_id}/Timeline/Followup", auth, json={"content": "once"})
    assert response.status_code == 504
    assert [item["content"] for item in glpi_sim.followups(ticket_id)] == ["once"]


def test_fault_unauthorized(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    glpi_sim.add_fault(Fault(path="/session", unauthorized=True))
    response = call(glpi_sim, "GET", "/session", auth)
    assert response.status_code == 401
    assert response.json()["status"] == "ERROR_UNAUTHENTICATED"


def test_fault_ignore_status_change(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    glpi_sim.add_fault(Fault(method="PATCH", ignore_status_change=True))
    response = call(glpi_sim, "PATCH", f"/Assistance/Ticket/{ticket_id}", auth, json={"status": 4})
    assert response.status_code == 200
    assert response.json()["status"]["id"] == 2


def test_fault_trickle(glpi_sim: GlpiSimulator, auth: dict[str, str]) -> None:
    glpi_sim.add_fault(Fault(path="/session", trickle_s=0.3))
    response = call(glpi_sim, "GET", "/session", auth)
    assert response.status_code == 200
    assert response.json()["user_id"] == 7


def test_fault_rejects_bad_counts() -> None:
    with pytest.raises(ValueError):
        Fault(nth=0)
    with pytest.raises(ValueError):
        Fault(times=0)


# Demo seed and the command line


def test_seed_demo_tickets(glpi_sim: GlpiSimulator) -> None:
    tickets = seed_demo(glpi_sim, f"{glpi_sim.url}/health")
    valid = glpi_sim.ticket(tickets["valid"])
    assert sorted(tickets) == ["failing", "invalid", "not_assigned", "other_category", "valid"]
    assert valid["status"]["id"] == 2
    assert "<br>&nbsp; url:" in valid["content"]
    assert "<pre" in glpi_sim.ticket(tickets["invalid"])["content"]
    assert glpi_sim.ticket(tickets["not_assigned"])["status"]["id"] == 1
    assert glpi_sim.ticket(tickets["other_category"])["category"]["id"] != 2
    assert requests.get(f"{glpi_sim.url}/missing-page", timeout=5).status_code == 404


def test_command_line_serves() -> None:
    command = [sys.executable, "-m", "glpibot.testing", "--port", "0", "--seed", "empty"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        first_line = process.stderr.readline() if process.stderr else ""
        url = first_line.split()[3]
        health = requests.get(f"{url}/health", timeout=5)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert first_line.startswith("GLPI simulator at http://127.0.0.1:")
    assert health.text == "ok"
    assert process.returncode == 0


def test_stop_releases_held_request() -> None:
    sim = GlpiSimulator().start()
    release = threading.Event()
    sim.add_fault(Fault(path="/health", hold=release))
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            requests.get(f"{sim.url}/health", timeout=10)
        except requests.RequestException as exc:
            errors.append(exc)

    worker = threading.Thread(target=fetch)
    worker.start()
    time.sleep(0.2)
    sim.stop()
    worker.join(10)
    assert not worker.is_alive()
    assert len(errors) == 1
