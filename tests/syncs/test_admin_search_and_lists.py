"""Finding runs and failures, and lists that fit: chosen columns, counts right-aligned,
long text cut to one line with the whole of it reachable, dry runs labelled."""

from __future__ import annotations

import pytest
from django.urls import reverse

from syncs.admin_display import run_id_searched
from syncs.models import RunStatus, SyncFailure
from tests.factories import DestinationFactory, SyncFactory, SyncFailureFactory, SyncRunFactory

pytestmark = pytest.mark.django_db

RUNS = reverse("admin:syncs_syncrun_changelist")
FAILURES = reverse("admin:syncs_syncfailure_changelist")
SYNCS = reverse("admin:syncs_sync_changelist")


def listed(response) -> list[int]:
    return [obj.pk for obj in response.context["cl"].result_list]


# --- Runs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("search", ["{id}", "#{id}", " {id} "])
def test_a_run_number_opens_that_run(admin_client, search: str) -> None:
    SyncRunFactory.create_batch(3)
    run = SyncRunFactory()

    response = admin_client.get(RUNS, {"q": search.format(id=run.pk)})

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:syncs_syncrun_change", args=[run.pk])


def test_a_number_that_is_no_run_searches_names(admin_client) -> None:
    named = SyncRunFactory(sync=SyncFactory(name="Signups 2024"))
    SyncRunFactory(sync=SyncFactory(name="Pro users"))

    response = admin_client.get(RUNS, {"q": "2024"})

    assert response.status_code == 200
    assert listed(response) == [named.pk]


def test_runs_are_found_by_sync_or_destination_name(admin_client) -> None:
    by_sync = SyncRunFactory(sync=SyncFactory(name="Churn risk → SFMC"))
    by_destination = SyncRunFactory(sync=SyncFactory(destination=DestinationFactory(name="Marketo EU")))
    SyncRunFactory(sync=SyncFactory(name="Other"))

    assert listed(admin_client.get(RUNS, {"q": "churn"})) == [by_sync.pk]
    assert listed(admin_client.get(RUNS, {"q": "marketo eu"})) == [by_destination.pk]


def test_a_run_number_among_other_words_is_a_name_search(admin_client) -> None:
    run = SyncRunFactory(sync=SyncFactory(name="Weekly digest seven"))
    SyncRunFactory(sync=SyncFactory(name="Weekly digest eight"))

    assert listed(admin_client.get(RUNS, {"q": "digest seven"})) == [run.pk]
    # Only a number alone opens a run.
    assert admin_client.get(RUNS, {"q": f"digest {run.pk}"}).status_code == 200


def test_actions_posted_with_a_run_number_in_the_url_are_not_redirected(admin_client) -> None:
    run = SyncRunFactory(status=RunStatus.SUCCEEDED)

    response = admin_client.post(f"{RUNS}?q={run.pk}", {"action": "cancel_run", "_selected_action": [run.pk]})

    assert response.status_code == 302
    assert response["Location"] != reverse("admin:syncs_syncrun_change", args=[run.pk])


def test_a_run_number_that_is_no_run_lists_nothing(admin_client) -> None:
    SyncRunFactory()

    response = admin_client.get(RUNS, {"q": "424242"})

    assert response.status_code == 200 and listed(response) == []


@pytest.mark.parametrize(("text", "expected"), [
    ("12", 12), ("#12", 12), (" #12 ", 12), ("0", None), ("12a", None), ("１２", None), ("", None),
    ("99999999999999999999", None), ("-3", None),
])
def test_what_counts_as_a_run_number(text: str, expected: int | None) -> None:
    assert run_id_searched(text) == expected


# --- Failures across runs --------------------------------------------------------------------


def test_failures_are_found_by_identity_distinct_id_or_code_across_runs(admin_client) -> None:
    first, second = SyncRunFactory(), SyncRunFactory()
    ana = [SyncFailureFactory(run=run, identity_value="ana@example.com", distinct_id="u-ana") for run in (first, second)]
    coded = SyncFailureFactory(run=second, code="1006")
    SyncFailureFactory.create_batch(3, run=first)

    assert sorted(listed(admin_client.get(FAILURES, {"q": "ana@example.com"}))) == sorted(f.pk for f in ana)
    assert sorted(listed(admin_client.get(FAILURES, {"q": "u-ana"}))) == sorted(f.pk for f in ana)
    assert listed(admin_client.get(FAILURES, {"q": "1006"})) == [coded.pk]
    assert listed(admin_client.get(FAILURES, {"q": "ana"})) == []  # exact, so every search uses an index


def test_failure_list_cuts_long_messages_and_links_to_the_whole(admin_client) -> None:
    message = "The destination rejected this user: " + "the value is invalid. " * 20
    failure = SyncFailureFactory(message=message, distinct_id="u-1", code="1003")

    page = admin_client.get(FAILURES).content.decode()

    detail = reverse("admin:syncs_syncfailure_change", args=[failure.pk])
    assert f'<a class="one-line message" href="{detail}" title="{message}">{message}</a>' in page
    assert ".one-line {" in page and "text-overflow: ellipsis" in page
    assert "u-1" in page and "1003" in page
    assert message.strip() in admin_client.get(detail).content.decode()


def test_failures_of_a_dry_run_say_so(admin_client) -> None:
    SyncFailureFactory(run=SyncRunFactory(is_dry_run=True), operation=SyncFailure.Operation.SKIP)

    page = admin_client.get(FAILURES).content.decode()

    assert '<span class="run-dry">dry run</span>' in page


# --- Runs and syncs lists --------------------------------------------------------------------


def test_runs_list_columns(admin_client) -> None:
    SyncRunFactory(status=RunStatus.SUCCEEDED)

    response = admin_client.get(RUNS)

    headers = [str(header["text"]) for header in response.context["result_headers"] if header["text"]]
    assert headers[1:] == ["Run", "Status", "Created at", "Duration", "Adds", "Removes", "Skipped", "API calls"]
    page = response.content.decode()
    for column in ("adds", "removes", "skipped", "api_calls_count"):
        assert f".field-{column}" in page  # right-aligned in list_styles.html
    assert "text-align: right" in page


def test_a_dry_run_in_the_runs_list_shows_what_it_planned(admin_client) -> None:
    SyncRunFactory(status=RunStatus.SUCCEEDED, is_dry_run=True, planned_adds=1500, planned_removes=20)

    page = admin_client.get(RUNS).content.decode()

    assert '<span class="run-dry" title="A dry run only plans: nothing was sent.">dry run</span>' in page
    assert 'title="Planned by this dry run: 1,500 to add, nothing sent">1,500<' in page
    assert 'title="Planned by this dry run: 20 to remove, nothing sent">20<' in page


def test_long_names_are_cut_with_the_whole_name_in_the_title(admin_client) -> None:
    name = "A sync with a very long name that would not fit in its column at all " * 2
    SyncRunFactory(sync=SyncFactory(name=name.strip()))

    page = admin_client.get(RUNS).content.decode()

    assert f'<span class="list-sub one-line" title="{name.strip()}">' in page


def test_syncs_list_columns(admin_client) -> None:
    SyncFactory()

    response = admin_client.get(SYNCS)

    headers = [str(header["text"]) for header in response.context["result_headers"] if header["text"]]
    assert headers[1:] == ["name", "Cohort → destination", "Target field", "Mode", "Last run", "Next run due"]
