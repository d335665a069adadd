"""Static list syncs as people set them up and run them: `apply` checks the list exists,
and a run to a list that does not exist fails naming it (exit 2 from run_sync)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.cache import cache
from django.core.management import call_command

from destinations.models import Destination
from syncs.config_as_code import config_apply
from syncs.models import RunStatus, Sync, SyncRun
from tests.factories import DestinationFactory, SyncFactory
from tests.syncs.fakes import pro_profile

pytestmark = [pytest.mark.django_db, pytest.mark.e2e]


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> None:
    cache.clear()


def _document(sandbox, *, list_name: str, **sync: Any) -> dict[str, Any]:
    return {
        "destinations": [{
            "name": "Marketo lists", "kind": "marketo_static_list", "base_url": sandbox.marketo_base_url,
            "client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret",
            "options": {"batch_size": 300, "bulk_threshold": 50_000},
        }],
        "cohorts": [{"name": "Pro", "rules": {"all": [{"property": "plan", "op": "eq", "value": "pro"}]}}],
        "syncs": [{"name": "Pro → list", "cohort": "Pro", "destination": "Marketo lists", "field": list_name, **sync}],
    }


def test_apply_creates_a_static_list_destination_and_its_sync(sandbox):
    report = config_apply(document=_document(sandbox, list_name="VIP customers"), environ={})

    assert report.ok, report.errors
    destination = Destination.objects.get(name="Marketo lists")
    assert destination.kind == "marketo_static_list" and destination.base_url == sandbox.marketo_base_url
    sync = Sync.objects.get(name="Pro → list")
    # Leads are matched by email: the kind's default identity.
    assert (sync.target_field, sync.identity_property) == ("VIP customers", "$email")


def test_apply_refuses_a_list_that_does_not_exist_naming_it_and_writes_nothing(sandbox):
    report = config_apply(document=_document(sandbox, list_name="VIP Customers"), environ={})

    assert not report.ok
    assert report.errors == [
        'syncs[0] "Pro → list": field: refused by "Marketo lists": Marketo has no static list named '
        "'VIP Customers'. Names match exactly, capitals included. Create the list in Marketo (Database or a "
        "program > New > New List), or use the name of an existing one (or id:1234 for a list by its id)."
    ]
    assert not Destination.objects.exists() and not Sync.objects.exists()


def test_apply_says_when_the_list_could_not_be_checked(sandbox):
    document = _document(sandbox, list_name="VIP customers")
    document["destinations"][0]["client_secret"] = "wrong-secret"

    report = config_apply(document=document, environ={})

    assert len(report.errors) == 1 and 'could not be checked in "Marketo lists"' in report.errors[0]
    assert "wrong-secret" not in report.errors[0]
    assert not Destination.objects.exists()


def test_an_unchanged_list_sync_is_not_checked_again(sandbox):
    assert config_apply(document=_document(sandbox, list_name="VIP customers"), environ={}).ok
    sandbox.sandboxes.marketo.configure(delete_lists=[1002])  # VIP customers
    calls = sandbox.sandboxes.marketo.state()["calls"]["total"]

    report = config_apply(document=_document(sandbox, list_name="VIP customers"), environ={})

    assert report.ok and report.totals["unchanged"] == 3
    assert sandbox.sandboxes.marketo.state()["calls"]["total"] == calls


def test_a_run_to_a_missing_list_fails_naming_it_and_exits_2(sandbox):
    pro_profile("ann@example.com")
    destination = DestinationFactory(static_list=True, base_url=sandbox.marketo_base_url,
                                     client_id="sandbox-client-id", client_secret="sandbox-client-secret")
    sync = SyncFactory(name="Pro → gone list", destination=destination, target_field="Deleted list")
    out = io.StringIO()

    with pytest.raises(SystemExit) as exit_:
        call_command("run_sync", sync.name, "--inline", "--json", stdout=out, stderr=io.StringIO())

    assert exit_.value.code == 2
    printed = json.loads(out.getvalue())
    assert printed["status"] == RunStatus.FAILED and printed["error_code"] == "list_not_found"
    assert "'Deleted list'" in printed["error"] and "Nothing was sent." in printed["error"]
    run = SyncRun.objects.get(sync=sync)
    assert run.attempted_adds == 0 and not sync.synced_members.exists()
    assert "POST /rest/v1/leads.json" not in sandbox.sandboxes.marketo.state()["calls"]["by_endpoint"]
