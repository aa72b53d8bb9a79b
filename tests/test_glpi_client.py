"""The GLPI client against the simulator: the calls of a pass, paging, retries and errors."""

from __future__ import annotations

import logging
from typing import Callable

import pytest

from glpibot.errors import GlpiError, GlpiNotFoundError, GlpiStatusNotChangedError, GlpiUnreachableError
from glpibot.glpi.client import GlpiClient
from glpibot.testing import Fault, GlpiSimulator
from tests.fixtures_glpi import settings_for

ClientFactory = Callable[..., GlpiClient]


def test_client_whole_flow(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    ticket_id = glpi_sim.add_ticket(name="check", content="<p>x</p>", assigned_user_ids=[7])
    client = glpi_client_factory()

    category = client.category_id("Automation > Homelab Bot")
    tickets = client.search_tickets(category, [1, 2])
    followup_id = client.add_followup(ticket_id, "<p>claimed &amp; running</p>")
    pending = client.set_status(ticket_id, 4)
    solution_id = client.add_solution(ticket_id, "<p>done</p>")
    timeline = client.timeline(ticket_id)

    assert client.user_id() == 7
    assert category == 2
    assert [ticket["id"] for ticket in tickets] == [ticket_id]
    assert client.get_ticket(ticket_id)["status"]["id"] == 5
    assert pending["status"]["id"] == 4
    assert [(item["type"], item["id"]) for item in timeline] == [("Followup", followup_id), ("Solution", solution_id)]
    assert glpi_sim.followups(ticket_id)[0]["content"] == "<p>claimed &amp; running</p>"
    assert client.request_count == glpi_sim.request_count


def test_json_body_sent_exactly(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    client = glpi_client_factory()
    client.add_followup(ticket_id, "<p>hi</p>", is_private=True)
    client.set_status(ticket_id, 4)
    writes = [request for request in glpi_sim.requests if request.method in ("POST", "PATCH") and request.path != "/token"]
    # The simulator, like GLPI, drops a JSON body whose Content-Type carries a charset.
    assert writes[0].json == {"content": "<p>hi</p>", "is_private": True}
    assert writes[1].json == {"status": 4}


def test_token_request_form(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    glpi_client_factory().user_id()
    token_request = glpi_sim.requests[0]
    assert token_request.path == "/token"
    assert token_request.form is not None
    assert token_request.form["grant_type"] == "password"
    assert token_request.form["scope"] == "api"


def test_category_id_int_checked(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    client = glpi_client_factory()

    assert client.category_id(2) == 2
    assert glpi_sim.count("GET", "/Dropdowns/ITILCategory/2") == 1


def test_category_id_unknown_rejected(glpi_client_factory: ClientFactory) -> None:
    with pytest.raises(GlpiNotFoundError, match="category id 99 not found"):
        glpi_client_factory().category_id(99)


def test_category_not_found(glpi_client_factory: ClientFactory) -> None:
    with pytest.raises(GlpiError, match="not found"):
        glpi_client_factory().category_id("Automation > Nothing")


def test_category_ambiguous(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    glpi_sim.add_category("Homelab Bot", parent_id=1)
    with pytest.raises(GlpiError, match="set glpi.category to the id"):
        glpi_client_factory().category_id("Automation > Homelab Bot")


def test_search_pages_120_tickets(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    created = [glpi_sim.add_ticket(name=f"t{index}", content="x", assigned_user_ids=[7]) for index in range(120)]
    tickets = glpi_client_factory().search_tickets(2, [1, 2], page_size=50)
    lists = [request for request in glpi_sim.requests if request.path == "/Assistance/Ticket"]
    assert [ticket["id"] for ticket in tickets] == created
    assert [request.query["start"] for request in lists] == ["0", "50", "100"]
    assert {request.query["limit"] for request in lists} == {"50"}
    assert [request.status for request in lists] == [206, 206, 200]


def test_search_sends_filter(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    expected_id = glpi_sim.add_ticket(name="expected", content="x", assigned_user_ids=[7])
    glpi_sim.add_ticket(name="trash", content="x", assigned_user_ids=[7], is_deleted=True)
    glpi_sim.add_ticket(name="pending", content="x", status=4)
    glpi_sim.add_ticket(name="elsewhere", content="x", category_id=1)
    tickets = glpi_client_factory().search_tickets(2, (1, 2))
    assert [ticket["id"] for ticket in tickets] == [expected_id]
    assert glpi_sim.requests[-1].query["filter"] == "category.id==2;status.id=in=(1,2);is_deleted==false"


def test_search_partial_answer(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    for index in range(3):
        glpi_sim.add_ticket(name=f"t{index}", content="x")
    tickets = glpi_client_factory().search_tickets(2, [1], page_size=2)
    lists = [request for request in glpi_sim.requests if request.path == "/Assistance/Ticket"]
    assert len(tickets) == 3
    assert lists[0].status == 206
    assert len(lists) == 2


def test_search_empty(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    assert glpi_client_factory().search_tickets(2, [1, 2]) == []


def test_string_status_never_sent(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x")
    client = glpi_client_factory()
    with pytest.raises(TypeError):
        client.set_status(ticket_id, "5")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        client.search_tickets(2, ["1"])  # type: ignore[list-item]
    assert glpi_sim.request_count == 0


def test_status_not_changed(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    glpi_sim.add_fault(Fault(method="PATCH", ignore_status_change=True))
    with pytest.raises(GlpiStatusNotChangedError) as caught:
        glpi_client_factory().set_status(ticket_id, 4)
    assert caught.value.http_status == 200
    assert f"ticket {ticket_id}" in str(caught.value)
    assert glpi_sim.ticket(ticket_id)["status"]["id"] == 2


def test_get_retried_on_503(
    glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x")
    glpi_sim.add_fault(Fault(method="GET", path=r"^/Assistance/Ticket/\d+$", times=2, status=503))
    caplog.set_level(logging.WARNING, logger="glpibot.glpi")
    ticket = glpi_client_factory().get_ticket(ticket_id)
    gets = [request for request in glpi_sim.requests if request.method == "GET"]
    retries = [record.getMessage() for record in caplog.records if "retry" in record.getMessage()]
    assert ticket["id"] == ticket_id
    assert [request.status for request in gets] == [503, 503, 200]
    assert len(retries) == 2
    assert f"/Assistance/Ticket/{ticket_id}" in retries[0]


def test_get_gives_up_after_retries(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    glpi_sim.add_fault(Fault(method="GET", path="^/session$", times=-1, status=502))
    with pytest.raises(GlpiError) as caught:
        glpi_client_factory(max_get_retries=2).user_id()
    assert caught.value.http_status == 502
    assert glpi_sim.count("GET", "/session") == 3


def test_get_retried_after_drop(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    glpi_sim.add_fault(Fault(method="GET", path="^/session$", drop=True))
    assert glpi_client_factory().user_id() == 7
    assert glpi_sim.count("GET", "/session") == 2


def test_post_not_retried_on_503(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    glpi_sim.add_fault(Fault(method="POST", path="/Followup$", status=503))
    with pytest.raises(GlpiError) as caught:
        glpi_client_factory().add_followup(ticket_id, "<p>once</p>")
    assert caught.value.http_status == 503
    assert caught.value.method == "POST"
    assert glpi_sim.count("POST", f"/Assistance/Ticket/{ticket_id}/Timeline/Followup") == 1
    assert glpi_sim.followups(ticket_id) == []


def test_lost_answer_not_resent(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    glpi_sim.add_fault(Fault(method="POST", path="/Followup$", status=502, apply_then_fail=True))
    with pytest.raises(GlpiError):
        glpi_client_factory().add_followup(ticket_id, "<p>once</p>")
    assert len(glpi_sim.followups(ticket_id)) == 1


def test_post_timeout_not_resent(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    glpi_sim.add_fault(Fault(method="POST", path="/Followup$", delay_s=1.5))
    client = glpi_client_factory(settings=settings_for(glpi_sim, timeout_s=0.5))
    with pytest.raises(GlpiUnreachableError, match="may have been applied"):
        client.add_followup(ticket_id, "<p>once</p>")
    assert glpi_sim.count("POST", f"/Assistance/Ticket/{ticket_id}/Timeline/Followup") == 1


def test_connection_refused(glpi_client_factory: ClientFactory) -> None:
    stopped = GlpiSimulator().start()
    settings = settings_for(stopped)
    stopped.stop()
    client = glpi_client_factory(settings=settings, max_get_retries=1)
    with pytest.raises(GlpiUnreachableError) as caught:
        client.user_id()
    assert "Connection refused" in str(caught.value)
    assert caught.value.path == "/token"


def test_error_carries_glpi_body(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    with pytest.raises(GlpiError) as caught:
        glpi_client_factory().get_ticket(999)
    error = caught.value
    assert error.http_status == 404
    assert error.error_code == "ERROR_ITEM_NOT_FOUND"
    assert error.method == "GET"
    assert error.path == "/Assistance/Ticket/999"
    assert "ERROR_ITEM_NOT_FOUND" in str(error)


def test_error_on_empty_500(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    glpi_sim.add_fault(Fault(method="PATCH", status=500))
    with pytest.raises(GlpiError, match="HTTP 500") as caught:
        glpi_client_factory().set_status(ticket_id, 4)
    assert "internal GLPI error" in str(caught.value)


def test_second_solution_error_messages(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    client = glpi_client_factory()
    client.add_solution(ticket_id, "<p>done</p>")
    with pytest.raises(GlpiError, match="already solved") as caught:
        client.add_solution(ticket_id, "<p>again</p>")
    assert caught.value.http_status == 500


def test_timeline_sorted_by_date(glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    client = glpi_client_factory()
    first = client.add_followup(ticket_id, "<p>one</p>")
    solution = client.add_solution(ticket_id, "<p>two</p>")
    glpi_sim.set_status(ticket_id, 2)
    last = client.add_followup(ticket_id, "<p>three</p>")
    timeline = client.timeline(ticket_id)
    # GLPI groups by type (follow-ups first); the client orders by date, then id.
    assert [item["id"] for item in timeline if item["type"] == "Followup"] == [first, last]
    assert {item["type"] for item in timeline} == {"Followup", "Solution"}
    assert [item["content"] for item in timeline if item["id"] == solution and item["type"] == "Solution"] == ["<p>two</p>"]


def test_requests_logged_without_headers(
    glpi_sim: GlpiSimulator, glpi_client_factory: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="glpibot.glpi")
    glpi_client_factory().user_id()
    messages = [record.getMessage() for record in caplog.records]
    assert "GET /session -> 200" in " ".join(messages)
    assert not any("Bearer" in message or "Authorization" in message for message in messages)
