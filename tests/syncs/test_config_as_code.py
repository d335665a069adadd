"""config_apply: create, update, idempotence, errors naming entry and field, atomicity."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from django.db import connection

from cohorts.models import Cohort, StaticMembership
from destinations.models import Destination
from syncs.config_as_code import config_apply
from syncs.models import Sync
from tests.factories import (
    CohortFactory,
    DestinationFactory,
    SyncedMemberFactory,
    SyncFactory,
)

pytestmark = pytest.mark.django_db

ENV = {"SFMC_SECRET": "sfmc-secret-from-env", "MARKETO_SECRET": "mkto-secret-from-env"}


def full_document() -> dict[str, Any]:
    return {
        "destinations": [
            {
                "name": "SFMC prod",
                "kind": "sfmc_data_extension",
                # Pasted from Installed Packages: reduced to the subdomain.
                "subdomain": "https://mc563885gzs27c5t9-63k636ttgm.auth.marketingcloudapis.com/",
                "client_id": "sfmc-client",
                "client_secret": {"env": "SFMC_SECRET"},
                "account_id": 514009877,
                "data_extension_key": "COHORTS_DE",
                "key_column": "SubscriberKey",
                "options": {"max_concurrency": 2},
            },
            {
                "name": "SFMC contacts",
                "kind": "sfmc_contacts",
                "subdomain": "mc563885gzs27c5t9-63k636ttgm",
                "client_id": "sfmc-client",
                "client_secret": "literal-contacts-secret",
            },
            {
                "name": "Marketo",
                "kind": "marketo",
                "base_url": "https://123-ABC-456.mktorest.com/rest/",
                "client_id": "mkto-client",
                "client_secret": {"env": "MARKETO_SECRET"},
            },
        ],
        "cohorts": [
            {
                "name": "Pro users",
                "description": "Everyone on Pro.",
                "rules": {"all": [{"property": "plan", "op": "eq", "value": "pro"}]},
            },
            {"name": "Beta testers", "members": ["u-1", "u-2", "u-2", "u-3"]},
        ],
        "syncs": [
            {
                "name": "Pro → SFMC",
                "cohort": "Pro users",
                "destination": "SFMC prod",
                "field": "Pro_users",
                "identity_property": "$distinct_id",
                "interval_minutes": 30,
                "options": {"create_missing_field": False},
            },
            {
                "name": "Beta → Marketo",
                "cohort": "Beta testers",
                "destination": "Marketo",
                "field": "betaTester",
                "mode": "one_time",
                "enabled": False,
            },
        ],
    }


def apply(document: Any, *, environ: dict[str, str] | None = None, dry_run: bool = False):
    return config_apply(document=document, environ=ENV if environ is None else environ, dry_run=dry_run)


def raw_secret(destination_name: str) -> str:
    """The stored ciphertext, as the database holds it."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT client_secret FROM {Destination._meta.db_table} WHERE name = %s",
            [destination_name],
        )
        return cursor.fetchone()[0]


def test_creates_destinations_cohorts_and_syncs():
    report = apply(full_document())

    assert report.ok, report.errors
    assert report.totals == {"created": 7, "updated": 0, "unchanged": 0}
    sfmc = Destination.objects.get(name="SFMC prod")
    assert sfmc.subdomain == "mc563885gzs27c5t9-63k636ttgm"
    assert sfmc.account_id == "514009877"
    assert sfmc.client_secret == "sfmc-secret-from-env"
    assert sfmc.options == {"max_concurrency": 2}
    assert raw_secret("SFMC prod").startswith("fernet:")
    contacts = Destination.objects.get(name="SFMC contacts")
    assert contacts.attribute_set == "Email Demographics"
    assert contacts.client_secret == "literal-contacts-secret"
    marketo = Destination.objects.get(name="Marketo")
    assert marketo.base_url == "https://123-ABC-456.mktorest.com"
    assert marketo.client_secret == "mkto-secret-from-env"

    pro = Cohort.objects.get(name="Pro users")
    assert pro.kind == Cohort.Kind.RULES and pro.description == "Everyone on Pro."
    beta = Cohort.objects.get(name="Beta testers")
    assert beta.kind == Cohort.Kind.STATIC and beta.rules is None
    assert sorted(beta.static_memberships.values_list("distinct_id", flat=True)) == [
        "u-1",
        "u-2",
        "u-3",
    ]

    sync = Sync.objects.get(name="Pro → SFMC")
    assert (sync.cohort, sync.destination) == (pro, sfmc)
    assert sync.target_field == "Pro_users" and sync.identity_property == "$distinct_id"
    assert sync.mode == Sync.Mode.DYNAMIC and sync.interval_minutes == 30 and sync.enabled
    assert sync.options == {"create_missing_field": False}
    beta_sync = Sync.objects.get(name="Beta → Marketo")
    assert beta_sync.identity_property == "$email"
    assert beta_sync.mode == Sync.Mode.ONE_TIME and beta_sync.enabled is False


def test_second_apply_reports_unchanged_and_writes_nothing():
    apply(full_document())
    stamps = {
        model: dict(model.objects.values_list("name", "updated_at"))
        for model in (Destination, Cohort, Sync)
    }
    ciphertexts = {name: raw_secret(name) for name in ("SFMC prod", "SFMC contacts", "Marketo")}
    membership_ids = set(StaticMembership.objects.values_list("pk", flat=True))

    report = apply(full_document())

    assert report.ok
    assert report.totals == {"created": 0, "updated": 0, "unchanged": 7}
    assert all(line.endswith(": unchanged") for line in report.lines()[:-1])
    for model, before in stamps.items():
        assert dict(model.objects.values_list("name", "updated_at")) == before
    # Fernet ciphertexts are randomised: an identical value proves no re-encryption.
    assert {name: raw_secret(name) for name in ciphertexts} == ciphertexts
    assert set(StaticMembership.objects.values_list("pk", flat=True)) == membership_ids


def test_update_touches_only_changed_entries_and_names_the_fields():
    apply(full_document())
    untouched_at = Destination.objects.get(name="Marketo").updated_at
    document = full_document()
    document["destinations"][0]["options"] = {"max_concurrency": 3}
    document["destinations"][0]["key_column"] = "Contact Key"
    document["syncs"][0]["enabled"] = False
    document["syncs"][0]["interval_minutes"] = None

    report = apply(document)

    lines = report.lines()
    assert 'destination "SFMC prod": updated (key_column, options)' in lines
    assert 'sync "Pro → SFMC": updated (interval_minutes, enabled)' in lines
    assert 'destination "Marketo": unchanged' in lines
    assert lines[-1] == "0 created, 2 updated, 5 unchanged."
    sfmc = Destination.objects.get(name="SFMC prod")
    assert sfmc.key_column == "Contact Key" and sfmc.options == {"max_concurrency": 3}
    sync = Sync.objects.get(name="Pro → SFMC")
    assert sync.enabled is False and sync.interval_minutes is None
    assert Destination.objects.get(name="Marketo").updated_at == untouched_at


def test_changed_secret_is_reencrypted_and_omitted_secret_is_kept():
    apply(full_document())
    marketo_ciphertext = raw_secret("Marketo")
    document = full_document()
    del document["destinations"][2]["client_secret"]  # omitted: keep the stored one

    report = apply(document, environ={**ENV, "SFMC_SECRET": "rotated-secret"})

    assert 'destination "SFMC prod": updated (client_secret)' in report.lines()
    assert Destination.objects.get(name="SFMC prod").client_secret == "rotated-secret"
    assert raw_secret("Marketo") == marketo_ciphertext
    assert not any("rotated-secret" in line for line in report.lines())


def test_static_members_are_replaced():
    apply(full_document())
    document = full_document()
    document["cohorts"][1]["members"] = ["u-3", "u-4"]

    report = apply(document)

    assert 'cohort "Beta testers": updated (members +1 -2)' in report.lines()
    beta = Cohort.objects.get(name="Beta testers")
    assert sorted(beta.static_memberships.values_list("distinct_id", flat=True)) == ["u-3", "u-4"]


def test_static_cohort_turned_into_rules_drops_its_list():
    apply(full_document())
    document = full_document()
    document["cohorts"][1] = {
        "name": "Beta testers",
        "rules": {"all": [{"property": "beta", "op": "eq", "value": True}]},
    }

    report = apply(document)

    assert report.ok
    beta = Cohort.objects.get(name="Beta testers")
    assert beta.kind == Cohort.Kind.RULES
    assert beta.rules == {"all": [{"property": "beta", "op": "eq", "value": True}]}
    assert not beta.static_memberships.exists()


def test_dry_run_reports_changes_and_writes_nothing():
    report = apply(full_document(), dry_run=True)

    assert report.ok
    assert 'destination "SFMC prod": would be created' in report.lines()
    assert report.lines()[-1].startswith("Dry run, nothing was written: 7 created")
    assert not Destination.objects.exists()
    assert not Cohort.objects.exists()
    assert not Sync.objects.exists()


def test_secrets_never_appear_in_the_report():
    reports = [apply(full_document()), apply(full_document())]
    document = full_document()
    document["destinations"][1]["client_secret"] = "another-literal-secret"
    reports.append(apply(document))

    text = "\n".join(line for report in reports for line in report.lines())
    for secret in ("sfmc-secret-from-env", "mkto-secret-from-env", "literal-contacts-secret",
                   "another-literal-secret"):
        assert secret not in text


def test_missing_environment_variable_names_it_and_the_entry():
    report = apply(full_document(), environ={"MARKETO_SECRET": "x"})

    assert report.errors == [
        'destinations[0] "SFMC prod": client_secret: environment variable SFMC_SECRET is not '
        "set (or empty). Set it before running apply."
    ]
    assert not Destination.objects.exists()


def _mutate(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    document = full_document()
    target: Any = document
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("destinations", 0, "subdomain"), "https://example.com/x",
         'destinations[0] "SFMC prod": subdomain: \'https://example.com/x\' is not an SFMC'),
        (("destinations", 0, "subdomain"), _DELETE,
         'destinations[0] "SFMC prod": subdomain: is required for SFMC data extension'),
        (("destinations", 0, "base_url"), "https://1-2-3.mktorest.com",
         'destinations[0] "SFMC prod": base_url: does not apply to SFMC data extension'),
        (("destinations", 0, "colour"), "blue",
         'destinations[0] "SFMC prod": colour: unknown key.'),
        (("destinations", 0, "kind"), "mailchimp",
         'destinations[0] "SFMC prod": kind: must be one of sfmc_data_extension'),
        (("destinations", 0, "auth_base_url"), "http://evil.example.com/auth",
         'destinations[0] "SFMC prod": auth_base_url: Refusing to contact http://evil.example.com'),
        (("destinations", 0, "account_id"), "BU-1",
         'destinations[0] "SFMC prod": account_id: \'BU-1\' is not a MID'),
        (("destinations", 0, "options"), {"max_concurrency": 99},
         'destinations[0] "SFMC prod": options: Option \'max_concurrency\' must be between'),
        (("destinations", 0, "client_id"), "",
         'destinations[0] "SFMC prod": client_id: is required'),
        (("destinations", 1, "client_secret"), _DELETE,
         'destinations[1] "SFMC contacts": client_secret: is required when creating'),
        (("destinations", 1, "client_secret"), {"env": 3},
         'destinations[1] "SFMC contacts": client_secret: must be text or {"env"'),
        (("destinations", 2, "base_url"), "ftp://123-ABC-456.mktorest.com",
         'destinations[2] "Marketo": base_url: This is not a URL CohortSync can call: only https://'),
        (("destinations", 2, "data_extension_key"), "DE",
         'destinations[2] "Marketo": data_extension_key: does not apply to Marketo'),
        (("destinations", 1, "name"), "SFMC prod",
         'destinations[1] "SFMC prod": name: is used twice in destinations (also at [0])'),
        (("cohorts", 0, "rules"), {"all": [{"property": "plan", "op": "eqq", "value": 1}]},
         'cohorts[0] "Pro users": rules: all[0]: unknown op \'eqq\''),
        (("cohorts", 0, "members"), ["a"],
         'cohorts[0] "Pro users": rules: give exactly one of "rules"'),
        (("cohorts", 1, "members"), "u-1,u-2",
         'cohorts[1] "Beta testers": members: must be a list of distinct ids'),
        (("cohorts", 1, "members"), ["u-1", ""],
         'cohorts[1] "Beta testers": members[1]: must be a non-empty distinct id'),
        (("cohorts", 1, "name"), "",
         "cohorts[1]: name: is required."),
        (("syncs", 0, "cohort"), "Nobody",
         'syncs[0] "Pro → SFMC": cohort: no cohort named "Nobody" in this document or the database.'),
        (("syncs", 0, "destination"), "Nowhere",
         'syncs[0] "Pro → SFMC": destination: no destination named "Nowhere"'),
        (("syncs", 0, "field"), _DELETE,
         'syncs[0] "Pro → SFMC": field: is required'),
        (("syncs", 0, "mode"), "hourly",
         'syncs[0] "Pro → SFMC": mode: must be one of one_time, dynamic'),
        (("syncs", 0, "interval_minutes"), 0,
         'syncs[0] "Pro → SFMC": interval_minutes: must be a whole number of minutes'),
        (("syncs", 1, "interval_minutes"), 60,
         'syncs[1] "Beta → Marketo": interval_minutes: applies to dynamic syncs only'),
        (("syncs", 0, "enabled"), "yes",
         'syncs[0] "Pro → SFMC": enabled: must be true or false'),
        (("syncs", 1, "options"), {"create_missing_field": True},
         'syncs[1] "Beta → Marketo": options.create_missing_field: applies only to SFMC data '
         "extension destinations"),
        (("syncs", 0, "options"), {"removal_guard_ratio": 2},
         'syncs[0] "Pro → SFMC": options.removal_guard_ratio: must be a number greater than 0'),
        (("syncs", 0, "options"), {"speed": "fast"},
         'syncs[0] "Pro → SFMC": options.speed: unknown option'),
        (("syncs", 0, "target_field"), "Pro_users",
         'syncs[0] "Pro → SFMC": target_field: unknown key.'),
        (("syncs", 1, "destination"), "SFMC prod",
         'syncs[1] "Beta → Marketo": field: "Pro_users" on destination "SFMC prod" is already '
         'used by sync "Pro → SFMC"'),
    ],
)
def test_each_error_names_the_entry_and_the_field(path, value, expected):
    document = _mutate(path, value)
    if path[:2] == ("syncs", 1) and path[-1] == "destination":
        document["syncs"][1]["field"] = "Pro_users"

    report = apply(document)

    assert not report.ok
    assert any(error.startswith(expected) for error in report.errors), report.errors
    assert report.lines()[-1].startswith("Nothing was written")
    assert not Destination.objects.exists()
    assert not Cohort.objects.exists()


def test_every_error_is_listed_across_sections():
    document = full_document()
    document["destinations"][0]["subdomain"] = "bad subdomain!"
    document["destinations"][2]["base_url"] = ""
    document["cohorts"][0]["rules"] = {"all": [{"property": "plan", "op": "in", "value": "pro"}]}
    document["syncs"][1]["mode"] = "sometimes"

    report = apply(document)

    prefixes = [error.split(":")[0] + ":" + error.split(":")[1] for error in report.errors]
    assert prefixes == [
        'destinations[0] "SFMC prod": subdomain',
        'destinations[2] "Marketo": base_url',
        'cohorts[0] "Pro users": rules',
        'syncs[1] "Beta → Marketo": mode',
    ]
    assert report.lines()[-1] == "Nothing was written: 4 errors."


def test_a_bad_sync_rolls_back_everything_in_the_document():
    document = full_document()
    document["syncs"][1]["identity_property"] = 42

    report = apply(document)

    assert report.errors == [
        'syncs[1] "Beta → Marketo": identity_property: must be text, not a number.'
    ]
    assert not Destination.objects.exists()
    assert not Cohort.objects.exists()
    assert not StaticMembership.objects.exists()
    assert not Sync.objects.exists()


def test_a_sync_may_reference_entries_already_in_the_database():
    destination = DestinationFactory(name="Existing DE")
    cohort = CohortFactory(name="Existing cohort")

    report = apply(
        {"syncs": [{"name": "S", "cohort": "Existing cohort", "destination": "Existing DE",
                    "field": "F1"}]}
    )

    assert report.ok, report.errors
    sync = Sync.objects.get(name="S")
    assert (sync.cohort, sync.destination) == (cohort, destination)


def test_field_used_by_another_sync_in_the_database_is_a_clear_error():
    existing = SyncFactory(name="Old", target_field="Pro_users",
                           destination=DestinationFactory(name="DE"))

    report = apply(
        {"syncs": [{"name": "New", "cohort": existing.cohort.name, "destination": "DE",
                    "field": "Pro_users"}]}
    )

    assert report.errors == [
        'syncs[0] "New": field: "Pro_users" on destination "DE" is already used by sync '
        '"Old". A field holds the membership of one cohort only: use another field.'
    ]


def test_a_field_is_one_per_account_not_per_destination_record():
    SyncFactory(name="Old", target_field="cohortVip",
                destination=DestinationFactory(name="Marketo", marketo=True,
                                               base_url="https://123-ABC-456.mktorest.com"))
    cohort = CohortFactory(name="VIP")
    document = {
        "destinations": [{"name": "Marketo (team B)", "kind": "marketo",
                          "base_url": "https://123-abc-456.mktorest.com",
                          "client_id": "id", "client_secret": "secret"}],
        "syncs": [{"name": "New", "cohort": cohort.name, "destination": "Marketo (team B)",
                   "field": "CohortVIP"}],
    }

    report = apply(document)

    assert report.errors == [
        'syncs[0] "New": field: "CohortVIP" is already used by sync "Old" through destination '
        '"Marketo", which writes to the same place as "Marketo (team B)": the Marketo instance '
        "123-abc-456.mktorest.com. A field holds the membership of one cohort only: use another field."
    ]
    assert not Destination.objects.filter(name="Marketo (team B)").exists()


@pytest.mark.parametrize("us_first", [False, True])
def test_moving_a_destination_onto_an_account_in_use_is_checked_on_the_result(us_first):
    eu_destination = DestinationFactory(name="EU", marketo=True, base_url="https://111-AAA-111.mktorest.com")
    us_destination = DestinationFactory(name="US", marketo=True, base_url="https://222-BBB-222.mktorest.com")
    if us_first:
        us = SyncFactory(name="US", target_field="cohortVip", destination=us_destination)
    SyncFactory(name="EU", target_field="cohortVip", destination=eu_destination)
    if not us_first:
        us = SyncFactory(name="US", target_field="cohortVip", destination=us_destination)

    report = apply({"destinations": [{"name": "US", "kind": "marketo", "client_id": "id",
                                      "base_url": "https://111-AAA-111.mktorest.com"}]})

    assert report.errors == [
        'destinations[0] "US": settings: would make it write to the Marketo instance '
        '111-AAA-111.mktorest.com, where sync "EU" (destination "EU") already writes the field '
        '"cohortVip" that its sync "US" writes. Change the field of one of them first.'
    ]
    us.destination.refresh_from_db()
    assert us.destination.base_url == "https://222-BBB-222.mktorest.com"


def test_options_about_removals_are_refused_on_a_one_time_sync():
    cohort = CohortFactory(name="VIP")
    DestinationFactory(name="Marketo", marketo=True)

    report = apply({"syncs": [{"name": "VIP once", "cohort": "VIP", "destination": "Marketo",
                               "field": "cohortVip", "mode": "one_time",
                               "options": {"removal_guard_ratio": 0.5}}]})

    assert report.errors == [
        'syncs[0] "VIP once": options.removal_guard_ratio: applies to dynamic syncs only (a one-time '
        "export never removes anyone); remove it."
    ]
    assert cohort.syncs.count() == 0


def test_swapping_fields_in_one_go_is_refused_without_writing():
    destination = DestinationFactory(name="DE")
    SyncFactory(name="A", target_field="F_a", destination=destination)
    SyncFactory(name="B", target_field="F_b", destination=destination)
    document = {
        "syncs": [
            {"name": name, "cohort": Sync.objects.get(name=name).cohort.name,
             "destination": "DE", "field": field, "interval_minutes": 60}
            for name, field in (("A", "F_b"), ("B", "F_a"))
        ]
    }

    report = apply(document)

    assert not report.ok
    assert "apply it in two steps" in report.errors[0]
    assert dict(Sync.objects.values_list("name", "target_field")) == {"A": "F_a", "B": "F_b"}
    assert set(Sync.objects.values_list("interval_minutes", flat=True)) == {None}


@pytest.mark.parametrize(
    ("key", "new_value", "shown"),
    [("field", "Pro_users_v2", "field"), ("identity_property", "$email", "identity_property")],
)
def test_frozen_sync_refuses_field_and_identity_changes(key, new_value, shown):
    apply(full_document())
    SyncedMemberFactory(sync=Sync.objects.get(name="Pro → SFMC"))
    document = full_document()
    document["syncs"][0][key] = new_value
    document["syncs"][0]["enabled"] = False

    report = apply(document)

    assert len(report.errors) == 1
    error = report.errors[0]
    assert error.startswith(f'syncs[0] "Pro → SFMC": {shown}: cannot change from ')
    assert "already written users" in error and "Create a new sync" in error
    sync = Sync.objects.get(name="Pro → SFMC")
    assert (sync.target_field, sync.identity_property, sync.enabled) == (
        "Pro_users",
        "$distinct_id",
        True,
    )


def test_frozen_sync_accepts_other_changes_and_unfrozen_sync_accepts_a_new_field():
    apply(full_document())
    SyncedMemberFactory(sync=Sync.objects.get(name="Pro → SFMC"))
    document = full_document()
    document["syncs"][0]["enabled"] = False
    document["syncs"][1]["field"] = "betaTester2"  # nothing acknowledged yet: allowed

    report = apply(document)

    assert report.ok, report.errors
    assert Sync.objects.get(name="Pro → SFMC").enabled is False
    assert Sync.objects.get(name="Beta → Marketo").target_field == "betaTester2"


def test_kind_cannot_change_under_existing_syncs():
    apply(full_document())
    document = copy.deepcopy(full_document())
    document["destinations"][2] = {
        "name": "Marketo",
        "kind": "sfmc_contacts",
        "subdomain": "mcabc",
        "client_id": "x",
    }

    report = apply(document)

    assert len(report.errors) == 1
    assert report.errors[0].startswith('destinations[2] "Marketo": kind: cannot change from marketo')


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([], "document: must be a JSON object"),
        ({"destination": []}, 'document: unknown key "destination"'),
        ({"cohorts": {"name": "x"}}, "cohorts: must be a list of objects"),
        ({"cohorts": ["Pro users"]}, "cohorts[0]: entry: must be an object, not text."),
    ],
)
def test_malformed_documents_are_explained(document, expected):
    report = apply(document)

    assert report.errors and report.errors[0].startswith(expected)


def test_schedules_follow_created_and_changed_syncs_after_commit(
    monkeypatch, django_capture_on_commit_callbacks
):
    calls: list[str] = []
    monkeypatch.setattr(
        "syncs.services.sync_schedule_update", lambda *, sync: calls.append(sync.name)
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        apply(full_document())
    assert calls == []  # nothing before the commit
    for callback in callbacks:
        callback()
    assert sorted(calls) == ["Beta → Marketo", "Pro → SFMC"]

    calls.clear()
    document = full_document()
    document["syncs"][1]["enabled"] = True
    with django_capture_on_commit_callbacks(execute=True):
        apply(document)
        apply(document, dry_run=True)
    assert calls == ["Beta → Marketo"]


def test_a_failing_schedule_update_is_a_warning_not_a_lost_apply(
    monkeypatch, django_capture_on_commit_callbacks
):
    def broken(*, sync):
        raise RuntimeError("queue down")

    monkeypatch.setattr("syncs.services.sync_schedule_update", broken)
    with django_capture_on_commit_callbacks(execute=True):
        report = apply(full_document())

    assert Sync.objects.count() == 2
    assert report.ok
    assert any("could not be updated (RuntimeError)" in line for line in report.lines())


def test_apply_keeps_django_q_schedules_in_step(django_capture_on_commit_callbacks):
    from django_q.models import Schedule

    with django_capture_on_commit_callbacks(execute=True):
        apply(full_document())
    pro = Sync.objects.get(name="Pro → SFMC")
    # One schedule: the enabled dynamic sync; the disabled one-time export has none.
    assert list(Schedule.objects.values_list("args", "minutes").filter(
        func="syncs.tasks.run_scheduled_sync")) == [(repr((pro.pk,)), 30)]

    document = full_document()
    document["syncs"][0]["enabled"] = False
    with django_capture_on_commit_callbacks(execute=True):
        apply(document)
    assert not Schedule.objects.filter(func="syncs.tasks.run_scheduled_sync").exists()


def test_a_new_sync_without_an_identity_takes_its_destination_kinds_default():
    document = full_document()
    del document["syncs"][0]["identity_property"]

    assert apply(document).ok
    assert Sync.objects.get(name="Pro → SFMC").identity_property == "$distinct_id"
    assert Sync.objects.get(name="Beta → Marketo").identity_property == "$email"


def test_an_omitted_identity_keeps_an_existing_syncs_own():
    document = full_document()
    document["syncs"][0]["identity_property"] = "$email"
    assert apply(document).ok
    SyncedMemberFactory(sync=Sync.objects.get(name="Pro → SFMC"))
    del document["syncs"][0]["identity_property"]

    report = apply(document)

    # Not re-targeted to the kind's default ($distinct_id), which the frozen sync refuses.
    assert report.ok, report.errors
    assert report.totals == {"created": 0, "updated": 0, "unchanged": 7}
    assert Sync.objects.get(name="Pro → SFMC").identity_property == "$email"
