"""The static list connector against the Marketo emulator over HTTP: finding the list,
adding (create or update by email, then add by id), removing (by id, looked up by email
where unknown), and the answers that count as removed."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from destinations.base import MembershipChange, UnitKind
from destinations.errors import TargetValidationError, UnexpectedResponseError
from destinations.marketo_static_list import lists
from destinations.marketo_static_list.connector import list_reference
from tests.destinations.marketo_static_list.conftest import LIST, target

pytestmark = pytest.mark.e2e


def _calls(marketo) -> dict[str, int]:
    return marketo.state()["calls"]["by_endpoint"]


# --- the list ---------------------------------------------------------------------------------


def test_the_field_is_a_list_name_or_an_id():
    assert list_reference("Pro users") == ("Pro users", None)
    assert list_reference("  id:1234 ") == ("", 1234)
    assert list_reference("ID: 77") == ("", 77)
    assert list_reference("id:abc") == ("id:abc", None)


def test_a_list_is_found_by_its_exact_name_or_by_id(connector, marketo):
    list_id = marketo.state()["lists"][0]["id"]

    assert connector.validate_target(target(LIST)).name == LIST
    assert connector.validate_target(target(f"id:{list_id}")).id == list_id


@pytest.mark.parametrize("field", ["pro users", "PRO USERS", "Pro", "id:999999"])
def test_a_missing_list_is_named_and_nothing_is_written(connector, marketo, field):
    with pytest.raises(TargetValidationError) as caught:
        connector.validate_target(target(field))

    assert caught.value.code == "list_not_found"
    assert (field.strip() if not field.startswith("id:") else "999999") in caught.value.message
    assert "capitals included" in caught.value.message
    assert "POST /rest/v1/leads.json" not in _calls(marketo)


def test_a_list_whose_name_has_a_comma_is_found_exactly(connector, marketo):
    marketo.configure(lists=[{"name": "Churn, then win-back"}, {"name": "Churn"}])

    assert connector.validate_target(target("Churn, then win-back")).name == "Churn, then win-back"


def test_lists_are_listed_as_targets_across_pages(connector, marketo, monkeypatch):
    monkeypatch.setattr(lists, "LIST_PAGE_SIZE", 2)
    marketo.configure(lists=[{"name": f"Extra {n}"} for n in range(3)])

    names = [f.name for f in connector.list_target_fields()]

    assert LIST in names and "Extra 2" in names and len(names) == len(set(names)) == 7
    assert "static lists usable for cohorts" in connector.check_connection().summary


# --- adds and removes -------------------------------------------------------------------------


def test_joining_users_are_created_or_updated_by_email_then_added(connector, marketo):
    marketo.configure(leads=[{"email": "Old@Example.com"}])

    outcomes = connector.push(target(), [MembershipChange("new@example.com", True),
                                         MembershipChange("old@example.com", True)])

    assert [o.ok for o in outcomes] == [True, True]
    assert marketo.list_members(LIST) == {"new@example.com", "old@example.com"}
    # The lead ids come back, for the synced state to keep.
    assert {o.remote_id for o in outcomes} == {str(marketo.lead(e)["id"]) for e in ("new@example.com", "old@example.com")}
    assert marketo.state()["lead_count"] == 2
    calls = _calls(marketo)
    assert calls["POST /rest/v1/leads.json"] == 1 and calls["POST /rest/v1/lists/{id}/leads.json"] == 1


def test_a_lead_marketo_refuses_fails_that_user_only(connector, marketo):
    marketo.configure(reject_emails={"bad@example.com": {"code": "1003", "message": "Email is blocklisted"}})

    good, bad = connector.push(target(), [MembershipChange("good@example.com", True),
                                          MembershipChange("bad@example.com", True)])

    assert good.ok and not bad.ok
    assert bad.code == "1003" and "Email is blocklisted" in bad.message
    assert marketo.list_members(LIST) == {"good@example.com"}


def test_invalid_emails_are_never_sent(connector, marketo):
    outcomes = connector.push(target(), [MembershipChange("not an email", True),
                                         MembershipChange("x@@example.com", False)])

    assert [(o.ok, o.code) for o in outcomes] == [(False, "invalid_email"), (False, "invalid_email")]
    assert "POST /rest/v1/leads.json" not in _calls(marketo) and "GET /rest/v1/leads.json" not in _calls(marketo)


def test_leaving_users_are_removed_by_the_lead_id_the_state_keeps(connector, marketo):
    added = connector.push(target(), [MembershipChange("a@example.com", True), MembershipChange("b@example.com", True)])

    removed = connector.push(target(), [MembershipChange(o.identity, False, remote_id=o.remote_id) for o in added])

    assert all(o.ok for o in removed)
    assert marketo.list_members(LIST) == set()
    # No lookup by email: the ids were known.
    assert "GET /rest/v1/leads.json" not in _calls(marketo)
    assert _calls(marketo)["DELETE /rest/v1/lists/{id}/leads.json"] == 1
    assert marketo.lead("a@example.com") is not None  # removed from the list, not deleted


def test_unknown_ids_are_looked_up_by_email_and_every_absence_counts_as_removed(connector, marketo):
    marketo.configure(leads=[{"email": "member@example.com"}, {"email": "outside@example.com"}],
                      lists=[{"name": "Churners", "members": ["member@example.com"]}])
    gone = marketo.lead("member@example.com")["id"]

    outcomes = connector.push(target("Churners"), [
        MembershipChange("member@example.com", False),  # in the list: removed
        MembershipChange("outside@example.com", False),  # a lead, not in the list (1015)
        MembershipChange("nobody@example.com", False),  # no lead with that email
        MembershipChange("stale@example.com", False, remote_id="987654"),  # a lead id that is gone (1004)
    ])

    assert [o.ok for o in outcomes] == [True, True, True, True]
    assert "no lead with this email" in outcomes[2].message
    assert outcomes[0].remote_id == str(gone)
    assert marketo.list_members("Churners") == set()
    assert _calls(marketo)["GET /rest/v1/leads.json"] == 1


def test_a_removal_refused_for_another_reason_fails_the_user_with_it(connector, marketo):
    connector.push(target(), [MembershipChange("a@example.com", True)])
    lead_id = marketo.lead("a@example.com")["id"]
    marketo.configure(answers=[{"path": "/lists/[0-9]+/leads.json$", "method": "DELETE", "json": {
        "requestId": "1#2", "success": True,
        "result": [{"id": lead_id, "status": "skipped", "reasons": [{"code": "1008", "message": "Access denied to partition"}]}],
    }}])

    (outcome,) = connector.push(target(), [MembershipChange("a@example.com", False, remote_id=str(lead_id))])

    assert not outcome.ok and outcome.code == "1008"
    assert "did not remove this lead from the static list" in outcome.message and "partition" in outcome.message


def test_an_answer_about_other_leads_acknowledges_nobody(connector, marketo):
    connector.push(target(), [MembershipChange("a@example.com", True)])
    marketo.configure(answers=[{"path": "/lists/[0-9]+/leads.json$", "method": "DELETE", "json": {
        "requestId": "1#2", "success": True, "result": [{"id": 5, "status": "removed"}],
    }}])

    with pytest.raises(UnexpectedResponseError, match="results for 1 leads that are not the 1 sent"):
        connector.push(target(), [MembershipChange("a@example.com", False, remote_id="1001")])


def test_users_sharing_an_email_keep_the_lead_in_the_list_while_one_is_a_member(connector, marketo):
    outcomes = connector.push(target(), [MembershipChange("Ann@example.com", False),
                                         MembershipChange("ann@example.com", True)])

    assert all(o.ok for o in outcomes) and "stays in the list" in outcomes[0].message
    assert marketo.list_members(LIST) == {"ann@example.com"}


def test_lookups_are_cut_by_the_length_of_the_whole_url(connector, marketo):
    marketo.configure(max_uri_bytes=8192)
    emails = [f"{'x' * 60}.{n}@example.com" for n in range(250)]  # 250 x ~80 bytes: >8 KB in one URL

    outcomes = connector.push(target(), [MembershipChange(e, False) for e in emails])

    assert all(o.ok for o in outcomes)
    assert _calls(marketo)["GET /rest/v1/leads.json"] >= 3  # fewer than 300 values, more than one URL
    base = connector.client.base_url
    paths = list(lists.lookup_paths(base, emails))
    assert sum(len(parse_qs(urlsplit(p).query)["filterValues"][0].split(",")) for p in paths) == 250
    assert all(len(base) + len(path) <= lists.MAX_LOOKUP_URL_BYTES < 8192 for path in paths)
    assert "414" not in str(marketo.state()["calls"]["refused"])


def test_lookups_hold_at_most_300_emails():
    paths = list(lists.lookup_paths("https://1-a-1.mktorest.com", [f"u{n}@x.io" for n in range(700)]))

    assert [len(parse_qs(urlsplit(p).query)["filterValues"][0].split(",")) for p in paths] == [300, 300, 100]


# --- large runs: bulk import into the list, removals by id -------------------------------------


def test_above_bulk_threshold_joining_users_are_imported_into_the_list(make_connector, marketo):
    connector = make_connector(bulk_threshold=3)
    assert connector.send_plan(4).units == UnitKind.FILES and connector.send_plan(3).units == UnitKind.BATCHES
    before = connector.push(target(), [MembershipChange("leaver@example.com", True)])
    marketo.configure(reject_emails={"bad@example.com": {"message": "Invalid email address"}})
    file = connector.new_file(target())
    rows = [("a@example.com", True), ("b@example.com", True), ("bad@example.com", True),
            ("leaver@example.com", False), ("not an email", True)]

    assert file.add_many(rows, {"leaver@example.com": before[0].remote_id}) == len(rows)
    failed = connector.push_file(target(), file)

    assert {o.identity: o.code for o in failed} == {"not an email": "invalid_email", "bad@example.com": "import_failure"}
    assert marketo.list_members(LIST) == {"a@example.com", "b@example.com"}
    calls = _calls(marketo)
    assert calls["POST /bulk/v1/leads.json"] == 1
    # The leaver went by its lead id: no lookup, one removal.
    assert "GET /rest/v1/leads.json" not in calls and calls["DELETE /rest/v1/lists/{id}/leads.json"] == 1


def test_an_import_file_is_cut_by_size_leavers_included():
    from destinations.marketo_static_list.files import LEAVER_BYTES, ListImportFile

    file = ListImportFile(max_bytes=7 + 2 * LEAVER_BYTES)

    taken = file.add_many([(f"l{n}@x.io", False) for n in range(5)])

    assert taken == 2 and file.leavers == {"l0@x.io": "", "l1@x.io": ""} and file.rows == 0
    assert file.take() == b"email\r\n"


def test_targets_are_checked_without_writing(connector, marketo):
    from destinations.base import TargetStatus

    exists, missing = connector.check_targets([target(LIST), target("No such list")])

    assert exists.status == TargetStatus.EXISTS and "'Pro users'" in exists.message
    assert missing.refused and "no static list named 'No such list'" in missing.message
    assert "POST /rest/v1/leads.json" not in _calls(marketo)
