"""The cohort editor: every rule problem listed, a live count and sample before saving,
the syncs that use the cohort, and a confirmation before a synced cohort empties."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from django.urls import reverse

from cohorts.forms import RULE_OPS
from cohorts.models import Cohort
from cohorts.rules import OPS
from tests.factories import (
    CohortFactory,
    ProfileFactory,
    SqlCohortFactory,
    StaticCohortFactory,
    StaticMembershipFactory,
    SyncedMemberFactory,
    SyncFactory,
)
from tests.syncs.admin_helpers import staff_client

pytestmark = pytest.mark.django_db

PREVIEW = reverse("admin:cohorts_cohort_preview")
ADD = reverse("admin:cohorts_cohort_add")
PRO = {"all": [{"property": "plan", "op": "eq", "value": "pro"}]}
NOBODY = {"all": [{"property": "plan", "op": "eq", "value": "enterprise"}]}


def change_url(cohort: Cohort) -> str:
    return reverse("admin:cohorts_cohort_change", args=[cohort.pk])


def cohort_form(cohort: Cohort | None = None, **overrides) -> dict:
    data = {"name": cohort.name if cohort else "Pro users", "kind": "rules", "description": "",
            "rules": json.dumps(cohort.rules if cohort else PRO), "members_text": ""}
    data.update(overrides)
    return data


@pytest.fixture
def pros() -> list:
    return [ProfileFactory(distinct_id=f"pro-{n}", properties={"plan": "pro", "$email": f"p{n}@example.com"})
            for n in range(3)]


# --- Every problem, listed ---------------------------------------------------------------


def test_saving_lists_every_problem_of_the_rules(admin_client):
    rules = {"all": [{"property": "plan", "op": "eqq", "value": "pro"},
                     {"property": "age", "op": "gt"},
                     {"any": []}]}

    response = admin_client.post(ADD, cohort_form(rules=json.dumps(rules)))

    assert response.context["adminform"].form.errors["rules"] == [
        "all[0]: unknown op 'eqq' (expected one of " + ", ".join(OPS) + ").",
        "all[1]: op 'gt' needs a 'value'.",
        "all[2]: 'any' group is empty, so nothing could match; add a condition.",
    ]


def test_the_builder_knows_every_operator_in_order():
    assert [entry["op"] for entry in RULE_OPS] == list(OPS)


# --- Live count and sample ---------------------------------------------------------------


def test_preview_counts_and_samples_the_members(admin_client, pros):
    ProfileFactory(properties={"plan": "free"})

    answer = admin_client.post(PREVIEW, {"rules": json.dumps(PRO)}).json()

    assert answer["ok"] is True and answer["count"] == 3
    assert answer["message"] == "3 profiles match these rules right now."
    assert [member["distinct_id"] for member in answer["sample"]] == ["pro-0", "pro-1", "pro-2"]
    assert answer["sample"][0] == {"distinct_id": "pro-0", "email": "p0@example.com",
                                   "url": reverse("admin:cohorts_profile_change", args=[pros[0].pk])}


def test_preview_lists_every_problem_and_bad_json(admin_client):
    broken = {"any": [{"property": "", "op": "eq", "value": "x"}, {"property": "plan", "op": "in", "value": []}]}

    problems = admin_client.post(PREVIEW, {"rules": json.dumps(broken)}).json()
    not_json = admin_client.post(PREVIEW, {"rules": '{"all": [}'}).json()
    empty = admin_client.post(PREVIEW, {"rules": " "}).json()

    assert problems == {"ok": False, "errors": [
        "any[0]: 'property' must be a non-empty property name.",
        "any[1]: 'value' must be a non-empty list for op 'in'.",
    ]}
    assert not_json["errors"] == ["This is not valid JSON: Expecting value at line 1, column 10."]
    assert empty["errors"] == ['A rules cohort needs rules. To include every profile, use {"all": []}.']


def test_preview_runs_one_at_a_time_per_user(admin_client, admin_user):
    cache.add(f"cohorts:rules-preview:{admin_user.pk}", 1)
    try:
        response = admin_client.post(PREVIEW, {"rules": json.dumps(PRO)})
    finally:
        cache.delete(f"cohorts:rules-preview:{admin_user.pk}")

    assert response.status_code == 429 and response.json()["busy"] is True
    assert admin_client.post(PREVIEW, {"rules": json.dumps(PRO)}).status_code == 200


def test_preview_takes_a_post_and_cohort_editing_rights(pros):
    viewer = staff_client(["cohorts.view_cohort", "cohorts.view_profile"])
    editor_without_profiles = staff_client(["cohorts.view_cohort", "cohorts.change_cohort"])

    assert viewer.post(PREVIEW, {"rules": json.dumps(PRO)}).status_code == 403
    assert editor_without_profiles.get(PREVIEW).status_code == 405
    answer = editor_without_profiles.post(PREVIEW, {"rules": json.dumps(PRO)}).json()
    assert answer["count"] == 3 and answer["sample"] == []  # no profile permission: no ids, no emails


def test_the_editor_page_carries_the_builder_and_its_settings(admin_client, pros):
    cohort = CohortFactory(rules=PRO)
    SyncFactory(cohort=cohort, name="Pro → Marketo")

    response = admin_client.get(change_url(cohort))

    page = response.content.decode()
    assert "cohorts/rule_builder.js" in page and "cohorts/rule_builder.css" in page
    config = response.context["cohort_editor_config"]
    assert config["previewUrl"] == PREVIEW
    assert config["currentCount"] == 3
    assert config["dynamicSyncs"] == ["Pro → Marketo"]
    assert config["propertyNames"] == ["$distinct_id", "$email", "plan"]


def test_an_sql_cohort_page_works_and_asks_no_rules_preview(admin_client):
    cohort = SqlCohortFactory(name="Team accounts")
    StaticMembershipFactory(cohort=cohort, distinct_id=ProfileFactory().distinct_id)
    SyncFactory(cohort=cohort)

    response = admin_client.get(change_url(cohort))

    assert response.status_code == 200
    assert response.context["cohort_editor_config"]["currentCount"] == 1
    # Saving it unchanged asks for no confirmation, whatever its members.
    data = {"name": cohort.name, "kind": "sql", "description": "", "rules": "", "members_text": "",
            "source": cohort.source_id, "sql": cohort.sql}
    assert admin_client.post(change_url(cohort), data).status_code == 302


# --- The syncs using the cohort ----------------------------------------------------------


def test_the_syncs_using_the_cohort_are_listed_with_acknowledged_members(admin_client):
    cohort = CohortFactory()
    sync = SyncFactory(cohort=cohort, name="Pro → SFMC", target_field="Pro_users")
    SyncedMemberFactory.create_batch(2, sync=sync)
    SyncFactory(name="Unrelated")

    page = admin_client.get(change_url(cohort)).content.decode()

    assert "Syncs using this cohort" in page
    assert f'<a href="{reverse("admin:syncs_sync_change", args=[sync.pk])}">Pro → SFMC</a>' in page
    assert "<code>Pro_users</code>" in page and '<td class="numeric">2</td>' in page
    assert "Unrelated" not in page


def test_without_sync_permission_the_syncs_are_named_without_links():
    cohort = CohortFactory()
    sync = SyncFactory(cohort=cohort, name="Pro → SFMC")
    client = staff_client(["cohorts.view_cohort"])

    page = client.get(change_url(cohort)).content.decode()

    assert "Pro → SFMC" in page
    assert reverse("admin:syncs_sync_change", args=[sync.pk]) not in page


# --- Confirming a cohort that empties or halves --------------------------------------


@pytest.fixture
def synced_cohort(pros) -> Cohort:
    cohort = CohortFactory(name="Pro users", rules=PRO)
    SyncFactory(cohort=cohort, name="Pro → Marketo")
    return cohort


def test_emptying_a_synced_cohort_asks_for_a_confirmation(admin_client, synced_cohort):
    response = admin_client.post(change_url(synced_cohort), cohort_form(synced_cohort, rules=json.dumps(NOBODY)))

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.non_field_errors() == [
        "Saving would take “Pro users” from 3 to 0 members. “Pro → Marketo” keeps it in sync: the "
        "next run would remove 3 users from the destination (a run removing more than half of "
        "them waits for approval). If that is what you want, tick “Yes, save it” and save again."
    ]
    page = response.content.decode()
    assert "Yes, save it: “Pro users” goes from 3 to 0 members" in page
    # "Members now" and the live warning still compare with the cohort as saved.
    assert response.context["cohort_editor_config"]["currentCount"] == 3
    assert "3 profiles match right now." in page
    synced_cohort.refresh_from_db()
    assert synced_cohort.rules == PRO

    confirmed = admin_client.post(change_url(synced_cohort),
                                  cohort_form(synced_cohort, rules=json.dumps(NOBODY), confirm_shrink="on"))

    assert confirmed.status_code == 302
    synced_cohort.refresh_from_db()
    assert synced_cohort.rules == NOBODY


def test_halving_asks_but_a_smaller_drop_or_an_unsynced_cohort_does_not(admin_client, synced_cohort, pros):
    one_left = {"all": [{"property": "$distinct_id", "op": "eq", "value": "pro-0"}]}
    two_left = {"all": [{"property": "$distinct_id", "op": "in", "value": ["pro-0", "pro-1"]}]}
    unsynced = CohortFactory(rules=PRO)

    halved = admin_client.post(change_url(synced_cohort), cohort_form(synced_cohort, rules=json.dumps(one_left)))
    smaller = admin_client.post(change_url(synced_cohort), cohort_form(synced_cohort, rules=json.dumps(two_left)))
    elsewhere = admin_client.post(change_url(unsynced), cohort_form(unsynced, rules=json.dumps(NOBODY)))

    assert "from 3 to 1 members" in halved.context["adminform"].form.non_field_errors()[0]
    assert smaller.status_code == 302 and elsewhere.status_code == 302


def test_clearing_a_synced_static_list_asks_too(admin_client):
    cohort = StaticCohortFactory(name="VIP")
    for profile in ProfileFactory.create_batch(2):
        StaticMembershipFactory(cohort=cohort, distinct_id=profile.distinct_id)
    SyncFactory(cohort=cohort, name="VIP → Marketo")

    response = admin_client.post(change_url(cohort), {"name": "VIP", "kind": "static", "description": "",
                                                      "rules": "", "members_text": "", "clear_members": "on"})

    assert "from 2 to 0 members" in response.context["adminform"].form.non_field_errors()[0]
    assert cohort.static_memberships.count() == 2


def test_preview_answers_values_no_database_takes_with_a_message(admin_client):
    too_deep = '{"all": [' * 2000 + "]}" * 2000
    nan_value = '{"all": [{"property": "score", "op": "gt", "value": NaN}]}'

    deep = admin_client.post(PREVIEW, {"rules": too_deep})
    nan = admin_client.post(PREVIEW, {"rules": nan_value})

    assert deep.status_code == nan.status_code == 200
    assert deep.json()["ok"] is False and "nested" in deep.json()["errors"][0]
    assert nan.json()["ok"] is False and "NaN" in nan.json()["errors"][0]
