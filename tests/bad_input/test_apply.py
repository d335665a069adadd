"""Bad values in `apply` documents: `--dry-run` and the real run give the same errors, each
naming the entry and the field, exit 1, and nothing of the existing configuration changes."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from cohorts.models import Cohort, StaticMembership
from destinations.models import Destination
from syncs.config_as_code import config_apply
from syncs.config_as_code.checks import SECTIONS
from syncs.models import Sync
from tests.bad_input.bad_values import (
    BAD_VALUE_IDS,
    BAD_VALUES,
    NAN,
    NUL,
    TOO_DEEP,
    TOO_DEEP_TO_READ,
    TOO_DEEP_TO_READ_PROBLEM,
    infinity,
    surrogate,
)

pytestmark = pytest.mark.django_db

BAD = "__BAD__"
ENV = {"APPLY_SECRET": "secret-from-env"}


def base_document() -> dict[str, Any]:
    return {
        "destinations": [
            {
                "name": "SFMC",
                "kind": "sfmc_data_extension",
                "subdomain": "mc563885gzs27c5t9-63k636ttgm",
                "client_id": "sfmc-client",
                "client_secret": {"env": "APPLY_SECRET"},
                "data_extension_key": "COHORTS_DE",
                "key_column": "SubscriberKey",
                "options": {"max_concurrency": 2},
            },
            {
                "name": "Marketo",
                "kind": "marketo",
                "base_url": "https://123-ABC-456.mktorest.com",
                "client_id": "mkto-client",
                "client_secret": {"env": "APPLY_SECRET"},
            },
        ],
        "cohorts": [
            {"name": "Pro", "rules": {"all": [{"property": "plan", "op": "eq", "value": "pro"}]}},
            {"name": "VIP", "members": ["u-1", "u-2"]},
        ],
        "syncs": [
            {"name": "Pro to SFMC", "cohort": "Pro", "destination": "SFMC", "field": "Pro",
             "options": {"property_mapping": {"plan": "Plan"}}},
            {"name": "VIP to Marketo", "cohort": "VIP", "destination": "Marketo",
             "field": "vipUser"},
        ],
    }


@pytest.fixture(autouse=True)
def existing_configuration(monkeypatch):
    """The configuration a refused document must leave exactly as it is."""
    monkeypatch.setenv("APPLY_SECRET", ENV["APPLY_SECRET"])
    monkeypatch.setattr("syncs.services.sync_schedule_update", lambda *, sync: None)
    report = config_apply(document=base_document(), environ=ENV)
    assert report.ok, report.errors


def snapshot() -> dict[str, list[dict[str, Any]]]:
    return {
        model.__name__: list(model.objects.order_by("pk").values())
        for model in (Destination, Cohort, StaticMembership, Sync)
    }


def document_text(edit) -> str:
    """The base document with one valid change (so a write would happen) and `edit` applied;
    BAD marks where a bad value's JSON text goes."""
    document = copy.deepcopy(base_document())
    document["cohorts"][0]["description"] = "Everyone on Pro (changed)."
    document["syncs"][1]["interval_minutes"] = 240
    edit(document)
    return json.dumps(document)


def apply_both(tmp_path: Path, text: str) -> list[str]:
    """Run `apply --dry-run` then `apply`; both must fail the same way. Returns the errors."""
    path = tmp_path / "cohortsync.json"
    path.write_text(text, encoding="utf-8")
    outputs = []
    for args in ((str(path), "--dry-run"), (str(path),)):
        out, err = io.StringIO(), io.StringIO()
        with pytest.raises(CommandError) as raised:
            call_command("apply", *args, stdout=out, stderr=err)
        assert raised.value.returncode == 1
        assert out.getvalue() == ""
        outputs.append(err.getvalue().splitlines())
    dry_run, real = outputs
    assert dry_run == real
    return real


def assert_refused(tmp_path: Path, text: str, expected: str) -> None:
    before = snapshot()
    assert apply_both(tmp_path, text) == [expected, "Nothing was written: 1 error."]
    assert snapshot() == before


def put(section: str, index: int, key: str, value: Any):
    def edit(document: dict[str, Any]) -> None:
        document[section][index][key] = value

    return edit


# --- Every bad value, in every kind of JSON field ------------------------------------------


@pytest.mark.parametrize("bad", BAD_VALUES, ids=BAD_VALUE_IDS)
def test_bad_value_in_destination_options(tmp_path, bad):
    text = document_text(put("destinations", 0, "options", {"max_concurrency": BAD}))

    assert_refused(
        tmp_path,
        text.replace(f'"{BAD}"', bad.json),
        f'destinations[0] "SFMC": options: {bad.message("max_concurrency")}.',
    )


@pytest.mark.parametrize("bad", BAD_VALUES, ids=BAD_VALUE_IDS)
def test_bad_value_in_cohort_rules(tmp_path, bad):
    rules = {"all": [{"property": "plan", "op": "eq", "value": "pro"},
                     {"property": "seats", "op": "gt", "value": BAD}]}
    text = document_text(put("cohorts", 0, "rules", rules))

    # Nesting is reported at the outermost key holding it, where the fix starts.
    where = "all" if bad.problem == TOO_DEEP else "all[1].value"
    assert_refused(
        tmp_path,
        text.replace(f'"{BAD}"', bad.json),
        f'cohorts[0] "Pro": rules: {bad.message(where)}.',
    )


# --- Text the database cannot store, in each kind of entry ---------------------------------


@pytest.mark.parametrize(
    "section, index, key, raw, expected",
    [
        ("destinations", 1, "client_id", '"mkto\\u0000client"',
         f'destinations[1] "Marketo": client_id: the value {NUL}.'),
        ("destinations", 1, "client_secret", '"\\ud800secret"',
         f'destinations[1] "Marketo": client_secret: the value {surrogate("d800")}.'),
        ("destinations", 0, "subdomain", '"mc563885\\u0000"',
         f'destinations[0] "SFMC": subdomain: the value {NUL}.'),
        ("destinations", 0, "name", '"SFMC\\u0000"', f"destinations[0]: name: the value {NUL}."),
        ("cohorts", 0, "description", '"Pro \\udfff users"',
         f'cohorts[0] "Pro": description: the value {surrogate("dfff")}.'),
        ("cohorts", 1, "members", '["u-1", "u-\\u0000"]', f'cohorts[1] "VIP": members: [1]: {NUL}.'),
        ("cohorts", 1, "members", '["\\ud83d", "u-2"]',
         f'cohorts[1] "VIP": members: [0]: {surrogate("d83d")}.'),
        ("cohorts", 1, "name", '"VIP\\udc00"', f"cohorts[1]: name: the value {surrogate('dc00')}."),
        ("syncs", 0, "field", '"Pro\\u0000"', f'syncs[0] "Pro to SFMC": field: the value {NUL}.'),
        ("syncs", 0, "options", '{"property_mapping": {"plan": "Pl\\u0000an"}}',
         f'syncs[0] "Pro to SFMC": options: property_mapping.plan: {NUL}.'),
        ("syncs", 0, "options", '{"removal_guard_ratio": NaN}',
         f'syncs[0] "Pro to SFMC": options: removal_guard_ratio: {NAN}.'),
        ("syncs", 1, "interval_minutes", "1e400",
         f'syncs[1] "VIP to Marketo": interval_minutes: the value {infinity()}.'),
        ("syncs", 1, "identity_property", '"$email\\ud800"',
         f'syncs[1] "VIP to Marketo": identity_property: the value {surrogate("d800")}.'),
    ],
    ids=[
        "nul-in-client-id", "surrogate-in-client-secret", "nul-in-subdomain", "nul-in-name",
        "surrogate-in-description", "nul-in-a-member", "surrogate-in-a-member",
        "surrogate-in-cohort-name", "nul-in-sync-field", "nul-in-property-mapping",
        "nan-removal-guard-ratio", "1e400-interval", "surrogate-in-identity-property",
    ],
)
def test_unstorable_value_in_an_entry_field(tmp_path, section, index, key, raw, expected):
    text = document_text(put(section, index, key, BAD))

    assert_refused(tmp_path, text.replace(f'"{BAD}"', raw), expected)


def test_a_sync_naming_a_refused_cohort_gets_no_second_error(tmp_path):
    # The cohort entry is refused for its rules; the sync that names it is fine otherwise.
    text = document_text(put("cohorts", 0, "rules", {"all": [{"property": BAD, "op": "is_set"}]}))

    assert_refused(
        tmp_path,
        text.replace(f'"{BAD}"', '"pl\\u0000an"'),
        f'cohorts[0] "Pro": rules: all[0].property: {NUL}.',
    )


def test_bad_key_of_an_entry_is_named_safely(tmp_path):
    text = document_text(put("destinations", 1, BAD, 1)).replace(f'"{BAD}"', '"base\\u0000url"')

    assert_refused(
        tmp_path, text, f'destinations[1] "Marketo": "base\\u0000url": the key {NUL}.'
    )


def test_bad_top_level_key_is_named_safely(tmp_path):
    text = document_text(lambda document: document.update({BAD: []}))

    assert_refused(
        tmp_path,
        text.replace(f'"{BAD}"', '"sources\\ud800"'),
        f'document: unknown key "sources\\ud800" (expected {", ".join(SECTIONS)}).',
    )


def test_every_bad_entry_is_listed_and_good_entries_are_still_checked(tmp_path):
    def edit(document: dict[str, Any]) -> None:
        document["destinations"][0]["options"] = {"max_concurrency": BAD}
        document["cohorts"][1]["members"] = ["u-1", BAD]
        document["syncs"][1]["mode"] = "sometimes"

    text = document_text(edit).replace(f'"{BAD}"', "NaN", 1).replace(f'"{BAD}"', '"\\u0000"')
    before = snapshot()

    assert apply_both(tmp_path, text) == [
        f'destinations[0] "SFMC": options: max_concurrency: {NAN}.',
        f'cohorts[1] "VIP": members: [1]: {NUL}.',
        'syncs[1] "VIP to Marketo": mode: must be one of one_time, dynamic, not \'sometimes\'.',
        "Nothing was written: 3 errors.",
    ]
    assert snapshot() == before


@pytest.mark.parametrize(
    "text, expected",
    [
        (f'{{"cohorts": {TOO_DEEP_TO_READ}}}', f"the value {TOO_DEEP_TO_READ_PROBLEM}."),
        ('{"cohorts": [{"name": "Big", "members": [' + "9" * 5000 + "]}]}",
         "the value holds a whole number too long to read (thousands of digits); store it as "
         "text."),
    ],
    ids=["1000-deep-document", "5000-digit-number"],
)
def test_document_python_cannot_read_is_an_error_not_a_traceback(tmp_path, text, expected):
    path = tmp_path / "cohortsync.json"
    path.write_text(text, encoding="utf-8")
    before = snapshot()

    for args in ((str(path), "--dry-run"), (str(path),)):
        with pytest.raises(CommandError) as raised:
            call_command("apply", *args, stdout=io.StringIO(), stderr=io.StringIO())
        assert str(raised.value) == f"{path}: {expected}"
        assert raised.value.returncode == 1
    assert snapshot() == before


def test_dry_run_rehearses_the_writes_so_it_agrees_even_on_what_the_checks_miss(
    tmp_path, monkeypatch
):
    """Were a value to slip past the checks, the dry run still meets the database's refusal,
    because it performs the writes and rolls them back: never "1 created" then a traceback."""
    monkeypatch.setattr(
        "syncs.config_as_code.sections_values_check", lambda sections, sink: None
    )
    text = document_text(put("cohorts", 0, "description", BAD))

    assert_refused(
        tmp_path,
        text.replace(f'"{BAD}"', '"\\ud800"'),
        "document: the database refused a value ('utf-8' codec can't encode character "
        "'\\ud800' in position 0: surrogates not allowed). Nothing was written.",
    )


def test_valid_document_still_applies_after_a_refused_one(tmp_path):
    bad = document_text(put("cohorts", 0, "rules", {"all": [{"property": "n", "op": "gt", "value": BAD}]}))
    apply_both(tmp_path, bad.replace(f'"{BAD}"', "1e400"))
    good = document_text(lambda document: None)
    path = tmp_path / "good.json"
    path.write_text(good, encoding="utf-8")
    out = io.StringIO()

    call_command("apply", str(path), stdout=out, stderr=io.StringIO())

    assert out.getvalue().splitlines()[-1] == "0 created, 2 updated, 4 unchanged."
    assert Cohort.objects.get(name="Pro").description == "Everyone on Pro (changed)."
    assert Sync.objects.get(name="VIP to Marketo").interval_minutes == 240
