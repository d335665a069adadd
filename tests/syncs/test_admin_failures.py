"""The failure list, the run page's failure table and the CSV stay usable on huge runs."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from syncs.models import SyncFailure
from tests.factories import SyncFailureFactory, SyncRunFactory
from tests.syncs.admin_helpers import capture_queries, count_queries_on, staff_client

pytestmark = pytest.mark.django_db

FAILURES_TABLE = SyncFailure._meta.db_table
CHANGELIST = reverse("admin:syncs_syncfailure_changelist")


def make_failures(run, count: int, **kwargs) -> list[SyncFailure]:
    return SyncFailureFactory.create_batch(count, run=run, **kwargs)


def test_changelist_pages_without_counting_the_table(admin_client):
    run = SyncRunFactory(failed_adds=130)
    make_failures(run, 130)

    with capture_queries() as queries:
        response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    assert count_queries_on(queries, FAILURES_TABLE) == []
    page = response.content.decode()
    assert "Page 1" in page
    assert "Next ›" in page
    # 100 per page: the newest first, the oldest on the next page.
    assert len(response.context["cl"].result_list) == 100


def test_last_page_has_no_next_link_and_still_no_count(admin_client):
    run = SyncRunFactory()
    failures = make_failures(run, 130)

    with capture_queries() as queries:
        response = admin_client.get(CHANGELIST, {"p": 2})

    assert response.status_code == 200
    assert count_queries_on(queries, FAILURES_TABLE) == []
    shown = {f.pk for f in response.context["cl"].result_list}
    assert shown == {f.pk for f in failures[:30]}
    page = response.content.decode()
    assert "Next ›" not in page
    assert "‹ Previous" in page


def test_filtered_by_run_and_searched_by_exact_identity(admin_client):
    run, other = SyncRunFactory(), SyncRunFactory()
    mine = make_failures(run, 3)
    make_failures(other, 3)

    response = admin_client.get(CHANGELIST, {"run__id__exact": run.pk})
    assert {f.pk for f in response.context["cl"].result_list} == {f.pk for f in mine}

    with capture_queries() as queries:
        response = admin_client.get(CHANGELIST, {"q": mine[1].identity_value})
    assert [f.pk for f in response.context["cl"].result_list] == [mine[1].pk]
    assert count_queries_on(queries, FAILURES_TABLE) == []


def test_code_filter_offers_recent_codes(admin_client):
    run = SyncRunFactory()
    make_failures(run, 2, code="1003")
    rejected = make_failures(run, 1, code="1006", operation=SyncFailure.Operation.REMOVE)

    response = admin_client.get(CHANGELIST, {"code": "1006"})

    assert [f.pk for f in response.context["cl"].result_list] == [rejected[0].pk]
    assert b"1003" in response.content


def test_failures_are_readonly():
    failure = SyncFailureFactory()
    client = staff_client(["syncs.view_syncfailure", "syncs.change_syncfailure", "syncs.delete_syncfailure"])

    assert client.get(reverse("admin:syncs_syncfailure_change", args=[failure.pk])).status_code == 200
    assert client.get(reverse("admin:syncs_syncfailure_add")).status_code == 403
    assert client.post(reverse("admin:syncs_syncfailure_delete", args=[failure.pk]), {"post": "yes"}).status_code == 403
    assert SyncFailure.objects.filter(pk=failure.pk).exists()


def test_csv_contains_every_failure_of_the_run_only(admin_client):
    run, other = SyncRunFactory(), SyncRunFactory()
    failures = make_failures(run, 250)
    make_failures(run, 1, identity_value="=HYPERLINK(\"http://evil\")", code="1004")
    make_failures(other, 5)

    response = admin_client.get(reverse("admin:syncs_syncrun_failures_csv", args=[run.pk]))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert f"run-{run.pk}-failures.csv" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 251
    assert [r["identity_value"] for r in rows[:250]] == [f.identity_value for f in failures]
    assert rows[0]["code"] == "1003" and rows[0]["message"] == "Value for field is invalid"
    # Opened in a spreadsheet, a crafted identity must not run as a formula.
    assert rows[-1]["identity_value"].startswith("'=")


def test_csv_needs_view_permission():
    run = SyncRunFactory()
    make_failures(run, 1)
    client = staff_client(["syncs.view_sync"])

    response = client.get(reverse("admin:syncs_syncrun_failures_csv", args=[run.pk]))

    assert response.status_code == 403
