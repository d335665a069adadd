"""Every admin URL, crawled as every role: nobody gets a 500, each role gets what it should.

The URLs come from the admin site itself (every model admin's patterns, custom views
included), so a page added later is crawled too. Known pages have explicit expectations;
a page this file does not know yet is still held to the rules every page must keep:
no 500, admins get what superusers get, viewers get no actions, and users without view
permission get nothing. Malformed and unknown ids are crawled on every object URL.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group, Permission
from django.contrib.messages import get_messages
from django.db import models
from django.test import Client
from django.urls import URLPattern
from django.utils import timezone
from django_q.models import OrmQ, Schedule, Task

from alerts.models import AlertDelivery
from api.models import ApiToken
from roles.services import ADMINS, COHORTSYNC_APP_LABELS, OPERATORS, VIEWERS
from sources.models import ImportRun
from syncs.models import RunStatus
from tests.destinations.destadmin_fakes import fake_connector
from tests.factories import (
    AlertRuleFactory,
    DestinationFactory,
    ProfileFactory,
    ProfileImportFactory,
    StaticCohortFactory,
    StaticMembershipFactory,
    SyncFactory,
    SyncFailureFactory,
    SyncRunFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

VIEWER, OPERATOR, ADMIN, RUNNER, NOBODY, SUPERUSER = (
    "viewer", "operator", "admin", "runner", "nobody", "superuser"
)
ROLES = (VIEWER, OPERATOR, ADMIN, RUNNER, NOBODY, SUPERUSER)
# The control permissions without any view permission: the combination item 7 found open.
RUNNER_PERMISSIONS = ("syncs.run_sync", "syncs.manage_run", "syncs.approve_run")
BLIND = (RUNNER, NOBODY)

OK, REDIRECT, FORBIDDEN, NOT_FOUND, NOT_ALLOWED = 200, 302, 403, 404, 405


def _by_role(**statuses: int) -> dict[str, int]:
    """Expected status per role; roles left out are forbidden."""
    return {role: statuses.get(role, FORBIDDEN) for role in ROLES}


SEEING = _by_role(viewer=OK, operator=OK, admin=OK, superuser=OK)
CONFIGURING = _by_role(admin=OK, superuser=OK)

# Custom views: (model label, URL name suffix, method) -> status per role.
CUSTOM_VIEWS: dict[tuple[str, str, str], dict[str, int]] = {
    ("cohorts.profile", "import", "GET"): CONFIGURING,
    ("cohorts.cohort", "members_csv", "GET"): SEEING,
    ("destinations.destination", "sandbox_state", "GET"): SEEING,
    ("destinations.destination", "test_connection", "POST"): _by_role(admin=REDIRECT, superuser=REDIRECT),
    # Without cohorts chosen, the export page sends the user to the cohort list.
    ("syncs.sync", "export_cohorts", "GET"): _by_role(admin=REDIRECT, superuser=REDIRECT),
    ("syncs.sync", "target_fields", "GET"): CONFIGURING,
    ("syncs.sync", "export_now", "POST"): _by_role(operator=REDIRECT, admin=REDIRECT, superuser=REDIRECT),
    ("syncs.sync", "dry_run", "POST"): _by_role(operator=REDIRECT, admin=REDIRECT, superuser=REDIRECT),
    ("syncs.syncrun", "failures_csv", "GET"): SEEING,
    ("syncs.syncrun", "plan_csv", "GET"): SEEING,
    ("syncs.syncrun", "progress", "GET"): SEEING,
    ("syncs.syncrun", "approve", "GET"): CONFIGURING,
    ("syncs.syncrun", "retry", "POST"): _by_role(operator=REDIRECT, admin=REDIRECT, superuser=REDIRECT),
    ("syncs.syncrun", "cancel", "POST"): _by_role(operator=REDIRECT, admin=REDIRECT, superuser=REDIRECT),
    # Rejecting a guarded run sends nothing (like cancelling it): operators may.
    ("syncs.syncrun", "reject", "POST"): _by_role(operator=REDIRECT, admin=REDIRECT, superuser=REDIRECT),
}
# Actions offered in each changelist, per role (models not listed: none but the admins').
OPERATOR_ACTIONS = {
    "syncs.sync": {"export_now", "dry_run", "full_resync"},
    "syncs.syncrun": {"retry_failed_users", "retry_all_failed_users", "cancel_run", "reject_guarded_run"},
    "sources.profileimport": {"run_now", "run_full_now"},
}
STANDARD_PAGES = {"changelist", "add", "change", "delete", "history", "redirect"}
VIEW_PAGES = {"changelist", "change", "history"}


@dataclass(frozen=True)
class AdminPage:
    model: type[models.Model]
    model_admin: admin.ModelAdmin
    name: str  # changelist, add, ..., or the custom view's URL name suffix
    route: str  # the pattern, e.g. "<path:object_id>/approve/"

    @property
    def label(self) -> str:
        return self.model._meta.label_lower

    @property
    def takes_id(self) -> bool:
        return "<" in self.route

    def url(self, object_id: object = "") -> str:
        opts = self.model._meta
        return f"/admin/{opts.app_label}/{opts.model_name}/" + re.sub(r"<[^>]+>", str(object_id), self.route)


def admin_pages() -> Iterator[AdminPage]:
    for model, model_admin in admin.site._registry.items():
        prefix = f"{model._meta.app_label}_{model._meta.model_name}_"
        for pattern in model_admin.get_urls():
            if not isinstance(pattern, URLPattern):
                continue
            name = pattern.name.removeprefix(prefix) if pattern.name else "redirect"
            if model._meta.label_lower == "auth.user" and name == "password_change":
                name = "password"
            yield AdminPage(model, model_admin, name, str(pattern.pattern))


@pytest.fixture
def objects() -> dict[str, models.Model]:
    """One object of every registered model, shaped so each page has something to show."""
    profile = ProfileFactory()
    cohort = StaticCohortFactory()
    StaticMembershipFactory(cohort=cohort, distinct_id=profile.distinct_id)
    sync = SyncFactory(cohort=cohort, destination=DestinationFactory())
    run = SyncRunFactory(
        sync=sync,
        status=RunStatus.AWAITING_APPROVAL,
        planned_removes=2,
        plan_sample={"remove": [{"identity": "ada@example.com"}]},
    )
    now = timezone.now()
    task = {"name": "task", "func": "syncs.tasks.prune_runs", "started": now, "stopped": now}
    rule = AlertRuleFactory()
    profile_import = ProfileImportFactory()
    return {
        "alerts.alertrule": rule,
        "alerts.alertdelivery": AlertDelivery.objects.create(rule=rule, sync=sync, run=run, event="failed"),
        "sources.source": profile_import.source,
        "sources.profileimport": profile_import,
        "sources.importrun": ImportRun.objects.create(profile_import=profile_import, trigger="manual"),
        "api.apitoken": ApiToken.objects.create(name="Web app", prefix="cs_abcd", token_hash="0" * 64),
        "cohorts.profile": profile,
        "cohorts.cohort": cohort,
        "destinations.destination": sync.destination,
        "syncs.sync": sync,
        "syncs.syncrun": run,
        "syncs.syncfailure": SyncFailureFactory(run=run),
        "auth.user": UserFactory(),
        "auth.group": Group.objects.get(name=VIEWERS),
        "django_q.schedule": Schedule.objects.create(name="prune", func="syncs.tasks.prune_runs"),
        "django_q.success": Task.objects.create(id="a" * 32, success=True, **task),
        "django_q.failure": Task.objects.create(id="b" * 32, success=False, **task),
        "django_q.ormq": OrmQ.objects.create(key="default", payload="not a task", lock=now),
    }


def client_for(role: str) -> Client:
    user = UserFactory(is_staff=True, is_superuser=role == SUPERUSER)
    group = {VIEWER: VIEWERS, OPERATOR: OPERATORS, ADMIN: ADMINS}.get(role)
    if group:
        user.groups.add(Group.objects.get(name=group))
    if role == RUNNER:
        for perm in RUNNER_PERMISSIONS:
            app_label, codename = perm.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    client = Client()
    client.force_login(user)
    return client


def request(client: Client, method: str, url: str) -> int:
    response = client.post(url) if method == "POST" else client.get(url)
    assert response.status_code != 500, f"{method} {url}: 500"
    return response.status_code


def expected_standard(page: AdminPage, role: str, superuser_status: int) -> int:
    if page.name == "redirect":
        return REDIRECT  # Django's <id>/ -> <id>/change/, for anyone logged in to the admin
    if role == SUPERUSER:
        return superuser_status
    if page.model._meta.app_label not in COHORTSYNC_APP_LABELS or role in BLIND:
        return FORBIDDEN
    if role == ADMIN or page.name in VIEW_PAGES:
        return superuser_status  # admins hold every permission of CohortSync's apps
    return FORBIDDEN


# Ids no model here can have: text, a fraction, beyond 64 bits, NUL, a path, a huge number.
MALFORMED_IDS = ("1.5", "9" * 30, "1%00", "1%2F..%2F2", "-1" * 40, "%20")
READ_FIRST_LAST = {"test_connection", "export_now", "dry_run", "retry", "cancel", "reject"}


def test_every_admin_page_answers_each_role_as_it_should(objects) -> None:
    superuser = client_for(SUPERUSER)
    clients = {role: client_for(role) for role in ROLES}
    mismatches = []
    # Reads first: the posts at the end may change what pages show (a cancelled run).
    pages = sorted(admin_pages(), key=lambda page: page.name in READ_FIRST_LAST)
    with fake_connector():
        for page in pages:
            obj = objects.get(page.label)
            if page.takes_id and obj is None:
                continue
            url = page.url(obj.pk if obj is not None else "")
            # A POST-only view answers GET with 405; what superusers get is the reference.
            everything: int | None = request(superuser, "GET", url)
            method = "GET" if everything != NOT_ALLOWED else "POST"
            if method == "POST":
                everything = None  # posting acts: each role posts once, the superuser in turn
            for role, client in clients.items():
                got = request(client, method, url)
                if page.name in STANDARD_PAGES:
                    want: int | set[int] = expected_standard(page, role, everything or got)
                elif (page.label, page.name, method) in CUSTOM_VIEWS:
                    want = CUSTOM_VIEWS[(page.label, page.name, method)][role]
                elif page.label == "auth.user":
                    want = got if role == SUPERUSER else FORBIDDEN
                else:
                    # A page this file does not know yet: the rules every page keeps.
                    want = {FORBIDDEN, NOT_ALLOWED} if role in BLIND else got
                    if role == ADMIN and everything is not None and page.model._meta.app_label in COHORTSYNC_APP_LABELS:
                        want = everything
                if got != want and not (isinstance(want, set) and got in want):
                    mismatches.append(f"{role}: {method} {url} -> {got}, expected {want}")
    assert not mismatches, "\n".join(mismatches)


@pytest.mark.parametrize("role", [NOBODY, SUPERUSER])
def test_malformed_and_unknown_ids_are_not_found_on_every_object_url(role, objects) -> None:
    """Ids are checked before permissions: the role only decides what a missing one gives."""
    client = client_for(role)
    wrong = []
    for number, page in enumerate(admin_pages()):
        if not page.takes_id or page.route.startswith("<id>"):
            continue  # auth's password page uses its own lookup (a 404 as well)
        integer_ids = isinstance(page.model._meta.pk, models.IntegerField)
        # Each page gets the basic case and one of the others, so every kind is crawled.
        malformed = ["abc", MALFORMED_IDS[number % len(MALFORMED_IDS)]] if integer_ids else ["1%00"]
        for object_id in malformed:
            status = request(client, "GET", page.url(object_id))
            if status != NOT_FOUND:
                wrong.append(f"GET {page.url(object_id)} -> {status}")
        if request(client, "POST", page.url(malformed[0])) != NOT_FOUND:
            wrong.append(f"POST {page.url(malformed[0])} is not a 404")
        if page.name not in STANDARD_PAGES:
            # A well-formed id of nothing: 404 for whoever may use the page, 403 otherwise.
            status = request(client, "GET", page.url(987654))
            if status not in (NOT_FOUND, NOT_ALLOWED) and not (role == NOBODY and status == FORBIDDEN):
                wrong.append(f"GET {page.url(987654)} -> {status}")
    assert not wrong, "\n".join(wrong)


def _offered(client: Client, url: str) -> set[str] | None:
    response = client.get(url)
    if response.status_code != OK:
        return None
    form = response.context["action_form"]
    return {name for name, _ in form.fields["action"].choices if name} if form else set()


def test_each_role_is_offered_exactly_its_actions_and_others_do_nothing(objects) -> None:
    superuser = client_for(SUPERUSER)
    clients = {role: client_for(role) for role in ROLES}
    with fake_connector():
        for page, (role, client) in itertools.product(admin_pages(), clients.items()):
            if page.name != "changelist":
                continue
            everything = _offered(superuser, page.url()) or set()
            offered = _offered(client, page.url())
            cohortsync = page.model._meta.app_label in COHORTSYNC_APP_LABELS
            if role in BLIND or (not cohortsync and role != SUPERUSER):
                assert offered is None, f"{role} reached {page.url()}"
                continue
            if role in (ADMIN, SUPERUSER):
                assert offered == everything, page.url()
            elif role == OPERATOR:
                assert offered == OPERATOR_ACTIONS.get(page.label, set()), page.url()
            else:
                assert offered == set(), f"viewers get no actions: {page.url()} offers {offered}"
            obj = objects.get(page.label)
            for action in sorted(everything - offered) if obj is not None else ():
                response = client.post(page.url(), {"action": action, ACTION_CHECKBOX_NAME: [obj.pk]})
                assert response.status_code in (OK, REDIRECT), (action, response.status_code)
                said = [str(m) for m in get_messages(response.wsgi_request)]
                assert set(said) <= {"No action selected."}, (role, action, said)


@pytest.mark.parametrize("role", ROLES)
def test_the_admin_index_and_site_pages_never_fail(role) -> None:
    client = client_for(role)
    for url in ("/admin/", "/admin/jsi18n/", "/admin/password_change/", "/admin/autocomplete/",
                "/admin/r/abc/1/", "/admin/r/1/abc/", *(f"/admin/{label}/" for label in COHORTSYNC_APP_LABELS)):
        request(client, "GET", url)
    index = client.get("/admin/").content.decode()
    assert ('id="syncs-dashboard"' in index) == (role not in BLIND)


def test_anonymous_visitors_are_sent_to_the_login_page_from_every_admin_url(objects) -> None:
    client = Client()
    for page in admin_pages():
        obj = objects.get(page.label)
        for object_id in ([obj.pk] if obj is not None else []) + ["abc"]:
            response = client.get(page.url(object_id if page.takes_id else ""))
            assert response.status_code == REDIRECT and "/admin/login/" in response["Location"], page.url(object_id)
