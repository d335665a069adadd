"""The shortcuts taken for large runs change no result: identities normalised in the
database are exactly what the connector's normalize_identity returns."""

from __future__ import annotations

import pytest
from django.db import connection

from destinations.registry import connector_for
from syncs.engine import staging
from syncs.engine.planning import _identity_or_skip, plan_build
from tests.factories import DestinationFactory, SyncFactory, SyncRunFactory
from tests.syncs.fakes import pro_profile

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
        plan = plan_build(run=SyncRunFactory(sync=sync), sync=sync, connector=connector, heartbeat=lambda: None)
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
