"""The shortcuts taken for large runs change no result: identities normalised in the
database are exactly what the connector's normalize_identity returns."""

from __future__ import annotations

import pytest
from django.db import connection

from destinations.registry import connector_for
from syncs.engine import staging
from syncs.engine.ledger import RunLedger
from syncs.engine.planning import _identity_or_skip, plan_build
from tests.factories import DestinationFactory, SyncFactory, SyncRunFactory
from tests.syncs.fakes import fake_connector_fixture, pro_profile  # noqa: F401

RAW_VALUES = [
    "plain@example.com",
    # Marketo: the same lead as the plain value above, reached through normalize_identity.
    "Plain@Example.COM",
    "Upper@Example.com",
    "lower@EXAMPLE.COM",
    "  padded@example.com",
    "trailing@example.com\t",
    "a.b+c_d@sub-domain.example.org",
    "odd!#$%&'*+/=?^_`{|}~-@example.com",
    "dots..twice@example.com",
    ".leading@example.com",
    "ünïcode@example.com",
    "no-at-sign.example.com",
    "two@@example.com",
    "colon:key@example.com",
    "semi;colon@example.com",
    "x@-bad-.example.com",
    "x@example",
    "UPPER-KEY-42",
    "key with inner spaces",
    " ",
    "a" * 250 + "@example.com",
]


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["marketo", "sfmc_data_extension", "sfmc_contacts"])
def test_identities_planned_in_the_database_match_normalize_identity(kind: str) -> None:
    for raw in RAW_VALUES:
        pro_profile(raw)
    if kind == "marketo":
        destination = DestinationFactory(marketo=True)
    elif kind == "sfmc_contacts":
        destination = DestinationFactory(contacts=True)
    else:
        destination = DestinationFactory()
    sync = SyncFactory(destination=destination)
    connector = connector_for(destination)
    expected = {
        identity for raw in RAW_VALUES
        if isinstance(identity := _identity_or_skip(connector, raw, "missing"), str)
    }

    try:
        run = SyncRunFactory(sync=sync)
        plan = plan_build(run=run, sync=sync, connector=connector, ledger=RunLedger(run))
        planned = {c.identity for c in staging.staging_changes_page(after_seq=0, limit=1000)}
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {staging.RAW_TABLE} WHERE plain")
            taken_as_they_are = cursor.fetchone()[0]
    finally:
        staging.staging_drop()

    assert planned == expected
    skipped = sum(1 for raw in RAW_VALUES if isinstance(_identity_or_skip(connector, raw, "missing"), tuple))
    assert plan.adds == len(expected) and plan.skipped == skipped
    unchanged = sum(1 for raw in RAW_VALUES if _identity_or_skip(connector, raw, "missing") == raw)
    if staging.plain_identity_supported():  # PostgreSQL: most values never went through Python
        assert 3 <= taken_as_they_are <= unchanged
    else:
        assert taken_as_they_are == 0
    assert ("upper@example.com" if kind == "marketo" else "Upper@Example.com") in planned


@pytest.mark.django_db
def test_a_churn_plan_hints_the_planner_for_its_own_statements_only(fake) -> None:
    from tests.syncs.fakes import run_now, set_plan

    leaving = pro_profile("leaving@example.com")
    pro_profile("staying@example.com")
    sync = SyncFactory()
    run_now(sync)
    set_plan(leaving, "free")
    postgres = connection.vendor == "postgresql"
    if postgres:
        with connection.cursor() as cursor:
            cursor.execute("SET parallel_tuple_cost = 0.25")

    run = run_now(sync)

    assert (run.planned_adds, run.planned_removes, run.succeeded_removes) == (0, 1, 1)
    assert fake.pushed_values()["leaving@example.com"] is False
    if postgres:  # churn statements run with a cheaper parallel tuple cost, then it is put back
        with connection.cursor() as cursor:
            cursor.execute("SHOW parallel_tuple_cost")
            assert cursor.fetchone()[0] == "0.25"
