"""The Marketo emulator's static lists answer as Marketo's list endpoints do."""

from __future__ import annotations

import pytest
import requests
from django.urls import reverse

from tests.factories import DestinationFactory, SyncFactory


@pytest.fixture
def base(sandbox) -> str:
    return sandbox.marketo_base_url


@pytest.fixture
def auth(base) -> dict[str, str]:
    token = requests.post(f"{base}/identity/oauth/token", data={
        "grant_type": "client_credentials", "client_id": "sandbox-client-id",
        "client_secret": "sandbox-client-secret"}, timeout=5).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_lists_are_found_by_exact_name_or_id_and_paged(base, auth, marketo):
    marketo.configure(lists=[{"name": f"Extra {n}"} for n in range(3)])

    by_name = requests.get(f"{base}/rest/v1/lists.json", params={"name": "Pro users"}, headers=auth, timeout=5).json()
    other_case = requests.get(f"{base}/rest/v1/lists.json", params={"name": "pro users"}, headers=auth, timeout=5).json()
    first = requests.get(f"{base}/rest/v1/lists.json", params={"batchSize": 5}, headers=auth, timeout=5).json()
    rest = requests.get(f"{base}/rest/v1/lists.json", params={"batchSize": 5, "nextPageToken": first["nextPageToken"]},
                        headers=auth, timeout=5).json()

    assert by_name["success"] is True and [item["name"] for item in by_name["result"]] == ["Pro users"]
    list_id = by_name["result"][0]["id"]
    by_id = requests.get(f"{base}/rest/v1/lists.json", params={"id": list_id}, headers=auth, timeout=5).json()
    assert by_id["result"][0]["name"] == "Pro users"
    assert other_case["result"] == []
    assert len(first["result"]) == 5 and len(rest["result"]) == 2 and "nextPageToken" not in rest


def test_adding_and_removing_answer_per_lead(base, auth, marketo):
    marketo.configure(leads=[{"email": "a@example.com"}, {"email": "b@example.com"}])
    list_id = marketo.state()["lists"][0]["id"]
    a, b = marketo.lead("a@example.com")["id"], marketo.lead("b@example.com")["id"]
    url = f"{base}/rest/v1/lists/{list_id}/leads.json"

    added = requests.post(url, json={"input": [{"id": a}, {"id": 424242}]}, headers=auth, timeout=5).json()
    removed = requests.delete(url, json={"input": [{"id": a}, {"id": b}]}, headers=auth, timeout=5).json()
    by_query = requests.post(url, params={"id": b}, headers=auth, timeout=5).json()
    member = requests.get(f"{base}/rest/v1/lists/{list_id}/leads/ismember.json", params={"id": [a, b]},
                          headers=auth, timeout=5).json()

    assert added["result"] == [
        {"id": a, "status": "added"},
        {"id": 424242, "status": "skipped", "reasons": [{"code": "1004", "message": "Lead not found"}]},
    ]
    assert removed["result"] == [
        {"id": a, "status": "removed"},
        {"id": b, "status": "skipped", "reasons": [{"code": "1015", "message": "Lead not in list"}]},
    ]
    assert by_query["result"] == [{"id": b, "status": "added"}]
    assert member["result"] == [{"id": a, "status": "notmemberof"}, {"id": b, "status": "memberof"}]
    assert marketo.list_members("Pro users") == {"b@example.com"}


def test_an_unknown_list_and_too_many_ids_are_refused_in_the_envelope(base, auth):
    unknown = requests.post(f"{base}/rest/v1/lists/999/leads.json", json={"input": [{"id": 1}]}, headers=auth,
                            timeout=5).json()
    too_many = requests.post(f"{base}/rest/v1/lists/1001/leads.json", json={"input": [{"id": n} for n in range(301)]},
                             headers=auth, timeout=5).json()

    assert (unknown["success"], unknown["errors"][0]["code"]) == (False, "1013")
    assert (too_many["success"], too_many["errors"][0]["code"]) == (False, "1003")


def test_a_bulk_import_with_a_list_id_adds_the_imported_leads_to_it(base, auth, marketo):
    files = {"file": ("leads.csv", b"email\r\nnew@example.com\r\n", "text/csv")}
    queued = requests.post(f"{base}/bulk/v1/leads.json", params={"format": "csv", "listId": 1002}, files=files,
                           headers=auth, timeout=5).json()
    refused = requests.post(f"{base}/bulk/v1/leads.json", params={"format": "csv", "listId": 999}, files=files,
                            headers=auth, timeout=5).json()
    for _ in range(3):
        requests.get(f"{base}/bulk/v1/leads/batch/{queued['result'][0]['batchId']}.json", headers=auth, timeout=5)

    assert marketo.list_members("VIP customers") == {"new@example.com"}
    assert (refused["success"], refused["errors"][0]["code"]) == (False, "1013")


def test_lookups_by_email_return_the_fields_asked_for(base, auth, marketo):
    marketo.configure(leads=[{"email": "a@example.com", "firstName": "Ann"}])

    found = requests.get(f"{base}/rest/v1/leads.json", params={
        "filterType": "email", "filterValues": "A@example.com,nobody@example.com", "fields": "id,email"},
        headers=auth, timeout=5).json()

    assert found["result"] == [{"id": marketo.lead("a@example.com")["id"], "email": "a@example.com"}]


@pytest.mark.django_db
def test_the_sandbox_page_shows_the_lists_a_destination_fills(admin_client, sandbox, marketo):
    marketo.configure(leads=[{"email": "a@example.com"}], lists=[{"name": "Admin list", "members": ["a@example.com"]}])
    destination = DestinationFactory(static_list=True, base_url=sandbox.marketo_base_url)
    SyncFactory(destination=destination, target_field="Admin list")

    page = admin_client.get(reverse("admin:destinations_destination_sandbox_state", args=[destination.pk]))

    html = page.content.decode()
    assert page.status_code == 200 and "Lists" in html and "Admin list" in html and "a@example.com" in html
