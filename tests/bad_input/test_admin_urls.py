"""Bad input, admin URLs: ids and query values no object can have.

Each case is a request a staff member (here a superuser, who may do everything) could
type or paste; each must answer with a specific message, never a 500, and change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.messages import get_messages

from cohorts.models import Cohort, Profile
from destinations.models import Destination
from syncs.models import RunStatus, Sync, SyncRun
from tests.destinations.destadmin_fakes import fake_connector
from tests.factories import ProfileFactory, SyncFactory, SyncRunFactory

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    url: str
    status: int
    says: str  # in the page, the JSON answer or the message shown after a redirect


NOT_A_RUN = "is not a valid id for a sync run. Ids of sync runs are whole numbers"
NOT_A_SYNC = "is not a valid id for a sync. Ids of syncs are whole numbers"

CASES = [
    Case("run page, text id", "GET", "/admin/syncs/syncrun/abc/", 404, f"“abc” {NOT_A_RUN}"),
    Case("run page, fraction", "GET", "/admin/syncs/syncrun/1.5/change/", 404, f"“1.5” {NOT_A_RUN}"),
    Case("run page, past 64 bits", "GET", "/admin/syncs/syncrun/99999999999999999999/change/", 404,
         NOT_A_RUN),
    Case("run page, negative past 64 bits", "GET", "/admin/syncs/syncrun/-99999999999999999999/", 404,
         NOT_A_RUN),
    Case("failures CSV, a path as id", "GET", "/admin/syncs/syncrun/1%2F..%2F2/failures.csv", 404,
         f"“1/../2” {NOT_A_RUN}"),
    Case("approve, NUL in id", "GET", "/admin/syncs/syncrun/1%00/approve/", 404, NOT_A_RUN),
    Case("cancel, text id", "POST", "/admin/syncs/syncrun/abc/cancel/", 404, NOT_A_RUN),
    Case("sync page, space as id", "GET", "/admin/syncs/sync/%20/change/", 404, NOT_A_SYNC),
    Case("export now, text id", "POST", "/admin/syncs/sync/abc/export-now/", 404, f"“abc” {NOT_A_SYNC}"),
    Case("dry run, fraction", "POST", "/admin/syncs/sync/2.0/dry-run/", 404, NOT_A_SYNC),
    Case("sync delete, overlong id", "GET", f"/admin/syncs/sync/{'7' * 300}/delete/", 404,
         f"“{'7' * 59}…” {NOT_A_SYNC}"),
    Case("test connection, text id", "POST", "/admin/destinations/destination/abc/test-connection/", 404,
         "is not a valid id for a destination"),
    Case("sandbox page, text id", "GET", "/admin/destinations/destination/x1/sandbox/", 404,
         "is not a valid id for a destination"),
    Case("members CSV, text id", "GET", "/admin/cohorts/cohort/abc/members.csv", 404,
         "is not a valid id for a cohort"),
    Case("profile history, unicode id", "GET", "/admin/cohorts/profile/%C3%A9/history/", 404,
         "“é” is not a valid id for a profile"),
    Case("target fields, text destination", "GET", "/admin/syncs/sync/target-fields/?destination=abc", 200,
         "Choose a destination first."),
    Case("target fields, destination past 64 bits", "GET",
         "/admin/syncs/sync/target-fields/?destination=99999999999999999999", 200, "Choose a destination first."),
    Case("export to, junk cohort ids", "GET", "/admin/syncs/sync/export-cohorts/?cohorts=abc,%00,-1", 302,
         "Choose one or more cohorts to export first"),
    Case("well-formed run id of nothing", "GET", "/admin/syncs/syncrun/987654/approve/", 404,
         "There is no sync run with the id “987654”: it may have been deleted"),
]


@pytest.fixture
def existing() -> dict[str, int]:
    """What must survive every case untouched."""
    ProfileFactory()
    sync = SyncFactory()
    SyncRunFactory(sync=sync, status=RunStatus.AWAITING_APPROVAL, planned_removes=1)
    return _counts()


def _counts() -> dict[str, int]:
    return {
        "profiles": Profile.objects.count(),
        "cohorts": Cohort.objects.count(),
        "destinations": Destination.objects.count(),
        "syncs": Sync.objects.count(),
        "runs": SyncRun.objects.count(),
        "awaiting": SyncRun.objects.filter(status=RunStatus.AWAITING_APPROVAL).count(),
    }


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_admin_url_with_bad_input(admin_client, existing, case: Case) -> None:
    with fake_connector() as configs:
        if case.method == "POST":
            response = admin_client.post(case.url)
        else:
            response = admin_client.get(case.url)

    assert response.status_code == case.status
    if case.status == 302:
        said = " ".join(str(message) for message in get_messages(response.wsgi_request))
    else:
        said = response.content.decode()
    assert case.says in said
    assert _counts() == existing, "nothing may change"
    assert configs == [], "no destination may be contacted"
