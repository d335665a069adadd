"""Pushing membership through Marketo's sync endpoint (createOrUpdate by email)."""

from __future__ import annotations

import json

import pytest
import responses

from destinations.base import MembershipChange
from destinations.errors import (
    UNEXPECTED_RESPONSE,
    ConfigurationError,
    InvalidIdentityError,
    UnexpectedResponseError,
    error_retriable,
)
from destinations.marketo.connector import MarketoConnector

from .conftest import config_for, target

REAL = "https://123-abc-456.mktorest.com"


def _scripted(results_by_call: list[list[dict]]) -> MarketoConnector:
    responses.post(f"{REAL}/identity/oauth/token", json={"access_token": "t:ab", "expires_in": 3599})
    responses.get(f"{REAL}/rest/v1/leads/describe.json", json={"success": True, "result": [
        {"id": 9, "displayName": "Pro", "dataType": "boolean", "rest": {"name": "cohortPro", "readOnly": False}},
    ]})
    for results in results_by_call:
        responses.post(f"{REAL}/rest/v1/leads.json", json={"requestId": "a#b", "success": True, "result": results})
    return MarketoConnector(config_for(REAL), sleep=lambda s: None)


def _sent_inputs() -> list[list[dict]]:
    return [json.loads(c.request.body)["input"] for c in responses.calls if c.request.url.endswith("/leads.json")]


@pytest.mark.parametrize(("options", "expected"), [({}, 300), ({"batch_size": 100}, 100)])
def test_sync_batches_never_exceed_300(make_connector, options, expected):
    assert make_connector(**options).send_plan(5_000).batch_size == expected


def test_options_out_of_bounds_are_refused_when_the_connector_is_made(make_connector):
    # Stored options are checked again where they are used (saved under older bounds, or
    # edited in the database): a clear settings error, not a silently clamped value.
    with pytest.raises(ConfigurationError, match="'batch_size' must be between 1 and 300") as caught:
        make_connector(batch_size=900)
    assert caught.value.code == "bad_options"


def test_a_large_batch_is_sent_in_calls_of_at_most_300(connector, marketo):
    changes = [MembershipChange(f"user{i}@example.com", True) for i in range(700)]

    outcomes = connector.push(target(), changes)

    assert all(o.ok for o in outcomes) and len(outcomes) == 700
    assert marketo.state()["calls"]["by_endpoint"]["POST /rest/v1/leads.json"] == 3
    assert marketo.state()["lead_count"] == 700


@responses.activate
def test_the_same_email_is_sent_once_and_a_member_wins():
    connector = _scripted([[{"id": 1, "status": "created"}, {"id": 2, "status": "updated"}]])
    changes = [
        MembershipChange("Ann@Example.com", False),
        MembershipChange("bob@example.com", True),
        MembershipChange(" ann@example.com ", True),
        MembershipChange("BOB@example.com", True),
    ]

    outcomes = connector.push(target("cohortPro"), changes)

    assert _sent_inputs() == [[{"email": "ann@example.com", "cohortPro": True},
                               {"email": "bob@example.com", "cohortPro": True}]]
    assert [o.identity for o in outcomes] == [c.identity for c in changes]
    assert all(o.ok for o in outcomes)
    assert "another member has the same email" in outcomes[0].message


@responses.activate
def test_results_map_to_users_by_position_including_skipped_reasons():
    connector = _scripted([[
        {"id": 7, "status": "created"},
        {"status": "skipped", "reasons": [{"code": "1007", "message": "Multiple lead match lookup criteria"}]},
        {"id": 8, "status": "updated"},
        {"status": "skipped", "reasons": [{"code": "611", "message": "System error"}]},
    ]])
    changes = [MembershipChange(f"u{i}@example.com", i % 2 == 0) for i in range(4)]

    outcomes = connector.push(target("cohortPro"), changes)

    assert [(o.identity, o.ok, o.code) for o in outcomes] == [
        ("u0@example.com", True, ""), ("u1@example.com", False, "1007"),
        ("u2@example.com", True, ""), ("u3@example.com", False, "611"),
    ]
    assert "Merge the duplicate leads in Marketo" in outcomes[1].message
    assert "Multiple lead match lookup criteria" in outcomes[1].message
    assert outcomes[1].retriable is False and outcomes[3].retriable is True


@responses.activate
def test_a_result_count_that_does_not_match_fails_every_user_for_a_retry():
    connector = _scripted([[{"id": 7, "status": "created"}]])

    with pytest.raises(UnexpectedResponseError) as caught:
        connector.push(target("cohortPro"), [MembershipChange("a@x.com", True), MembershipChange("b@x.com", True)])

    assert caught.value.code == UNEXPECTED_RESPONSE and error_retriable(caught.value)
    assert "1 results for 2 leads" in caught.value.message


def test_skipped_records_from_the_sandbox_fail_only_those_users(connector, marketo):
    marketo.configure(
        reject_emails={"blocked@example.com": {"code": "1003", "message": "Email address blocked"}},
        leads=[{"email": "twice@example.com"}, {"email": "TWICE@example.com"}],
    )
    changes = [MembershipChange(e, True) for e in ("ok1@example.com", "blocked@example.com",
                                                   "twice@example.com", "ok2@example.com")]

    outcomes = connector.push(target(), changes)

    assert [(o.ok, o.code) for o in outcomes] == [(True, ""), (False, "1003"), (False, "1007"), (True, "")]
    assert "Email address blocked" in outcomes[1].message
    assert marketo.lead("ok2@example.com")["cohortProUsers"] is True
    assert marketo.lead("blocked@example.com") is None


@pytest.mark.parametrize(("raw", "expected"), [
    ("  Ann.Lee+vip@Example.CO.uk ", "ann.lee+vip@example.co.uk"),
    ("o'neil@example.com", "o'neil@example.com"),
])
def test_emails_are_trimmed_and_lower_cased(connector, raw, expected):
    assert connector.normalize_identity(raw) == expected


@pytest.mark.parametrize(("raw", "reason"), [
    ("josé@example.com", "only ASCII"),
    ("ann@exämple.com", "only ASCII"),
    ("not-an-email", "exactly one @"),
    ("Ann <ann@example.com>", "characters such as"),
    ("a@b@example.com", "exactly one @"),
    ("ann@localhost", "not a valid email domain"),
    ("ann@example..com", "not a valid email domain"),
    (".ann@example.com", "misplaced dots"),
    ("", "empty"),
    (None, "empty"),
])
def test_invalid_emails_are_rejected_locally_with_the_reason(connector, raw, reason):
    with pytest.raises(InvalidIdentityError, match=reason):
        connector.normalize_identity(raw)
    assert connector.api_calls == 0


def test_an_invalid_identity_in_a_batch_fails_that_user_without_sending_it(connector, marketo):
    outcomes = connector.push(target(), [MembershipChange("good@example.com", True),
                                         MembershipChange("bad email@example.com", True)])

    assert [o.ok for o in outcomes] == [True, False]
    assert outcomes[1].code == "invalid_email"
    assert marketo.state()["lead_count"] == 1


def test_leavers_get_false_on_existing_leads(connector, marketo):
    marketo.configure(leads=[{"email": "Leaver@Example.com", "cohortProUsers": True}])

    outcomes = connector.push(target(), [MembershipChange("leaver@example.com", False)])

    assert outcomes[0].ok
    assert marketo.state()["lead_count"] == 1
    assert marketo.lead("leaver@example.com")["cohortProUsers"] is False
