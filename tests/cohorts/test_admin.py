"""Profile and cohort admin: import upload, rules editor, static lists, members, export."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cohorts.models import Cohort, Profile, StaticMembership
from tests.factories import (
    CohortFactory,
    ProfileFactory,
    StaticCohortFactory,
    StaticMembershipFactory,
    UserFactory,
)
from tests.syncs.admin_helpers import action_names

pytestmark = pytest.mark.django_db

IMPORT_URL = "admin:cohorts_profile_import"


def cohort_form(**overrides):
    data = {"name": "Pro users", "kind": "rules", "description": "", "rules": "", "members_text": ""}
    data.update(overrides)
    return data


@pytest.fixture
def staff_client(client):
    def login(*codenames):
        user = UserFactory(is_staff=True)
        user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
        client.force_login(user)
        return client

    return login


class TestProfileImportPage:
    def test_upload_csv_imports_and_reports_rejects(self, admin_client):
        ProfileFactory(distinct_id="u1", properties={"plan": "free", "country": "US"})
        upload = SimpleUploadedFile("people.csv", b"distinct_id,plan\nu1,pro\nu2,team\n,lost\n")
        response = admin_client.post(reverse(IMPORT_URL), {"file": upload, "file_format": ""})
        assert response.status_code == 200
        assert Profile.objects.get(distinct_id="u1").properties == {"plan": "pro", "country": "US"}
        assert Profile.objects.get(distinct_id="u2").properties == {"plan": "team"}
        page = response.content.decode()
        assert "Imported people.csv: 3 rows read: 1 profile created, 1 updated, 0 unchanged, 1 rejected." in page
        assert "<td>4</td><td>distinct_id is empty</td>" in page

    def test_upload_jsonl_with_explicit_format(self, admin_client):
        upload = SimpleUploadedFile("export.txt", b'{"distinct_id": "j1", "properties": {"vip": true}}\n')
        admin_client.post(reverse(IMPORT_URL), {"file": upload, "file_format": "jsonl"})
        assert Profile.objects.get(distinct_id="j1").properties == {"vip": True}

    def test_unusable_file_shows_an_error(self, admin_client):
        upload = SimpleUploadedFile("people.csv", b"email,plan\na@b.c,pro\n")
        response = admin_client.post(reverse(IMPORT_URL), {"file": upload}, follow=True)
        assert "Nothing was imported from people.csv: The CSV header has no distinct_id column" in response.content.decode()
        assert not Profile.objects.exists()

    def test_requires_add_profile_permission(self, staff_client):
        client = staff_client("view_profile")
        upload = SimpleUploadedFile("people.csv", b"distinct_id\nu1\n")
        assert client.post(reverse(IMPORT_URL), {"file": upload}).status_code == 403
        assert client.get(reverse(IMPORT_URL)).status_code == 403
        assert not Profile.objects.exists()
        changelist = client.get(reverse("admin:cohorts_profile_changelist")).content.decode()
        assert "Import profiles" not in changelist

    def test_changelist_links_to_import_for_importers(self, staff_client):
        client = staff_client("view_profile", "add_profile", "change_profile")
        page = client.get(reverse("admin:cohorts_profile_changelist")).content.decode()
        assert reverse(IMPORT_URL) in page
        assert client.get(reverse(IMPORT_URL)).status_code == 200


class TestProfileList:
    def test_search_by_email_and_distinct_id_prefix(self, admin_client):
        ProfileFactory(distinct_id="alpha-1", properties={"$email": "Ana@Example.com"})
        ProfileFactory(distinct_id="alpha-2", properties={"$email": "bo@example.com"})
        ProfileFactory(distinct_id="beta-1", properties={"$email": "cy@example.com"})
        url = reverse("admin:cohorts_profile_changelist")
        page = admin_client.get(url, {"q": "alpha"}).content.decode()
        assert "alpha-1" in page and "alpha-2" in page and "beta-1" not in page
        page = admin_client.get(url, {"q": "Ana@Example.com"}).content.decode()
        assert "alpha-1" in page and "alpha-2" not in page
        page = admin_client.get(url, {"q": "BO@EXAMPLE.COM"}).content.decode()
        assert "alpha-2" in page and "alpha-1" not in page
        assert "cy@example.com" in admin_client.get(url).content.decode()

    def test_the_list_is_paged_without_counting_the_profiles(self, admin_client):
        # A COUNT(*) of 10M profiles took seconds per page view: the list only asks whether
        # a next page exists.
        for i in range(101):
            ProfileFactory(distinct_id=f"u-{i:03d}")
        url = reverse("admin:cohorts_profile_changelist")
        with CaptureQueriesContext(connection) as queries:
            first = admin_client.get(url).content.decode()
        assert not [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"] and "cohorts_profile" in q["sql"]]
        assert "Page 1" in first and "Next ›" in first and "u-099" in first and "u-100" not in first
        second = admin_client.get(url + "?p=2").content.decode()
        assert "Page 2" in second and "‹ Previous" in second and "Next ›" not in second and "u-100" in second

    def test_change_page_shows_properties_as_a_table(self, admin_client):
        profile = ProfileFactory(properties={"plan": "pro", "seats": 3})
        page = admin_client.get(reverse("admin:cohorts_profile_change", args=[profile.pk])).content.decode()
        assert "<th scope='row'>seats</th><td><code>3</code></td>" in page

    def test_properties_are_labelled_once(self, admin_client):
        profile = ProfileFactory()
        page = admin_client.get(reverse("admin:cohorts_profile_change", args=[profile.pk])).content.decode()
        add_page = admin_client.get(reverse("admin:cohorts_profile_add")).content.decode()
        assert page.count(">Properties:</label>") == 1
        assert page.count(">Current properties:</label>") == 1
        assert add_page.count(">Properties:</label>") == 1 and "Current properties" not in add_page

    def test_properties_must_be_an_object(self, admin_client):
        profile = ProfileFactory()
        url = reverse("admin:cohorts_profile_change", args=[profile.pk])
        response = admin_client.post(url, {"distinct_id": profile.distinct_id, "properties": "[1]"})
        assert "Properties must be a JSON object" in response.content.decode()


class TestCohortRulesEditor:
    def test_valid_rules_are_saved(self, admin_client):
        rules = {"all": [{"property": "plan", "op": "eq", "value": "pro"}]}
        response = admin_client.post(reverse("admin:cohorts_cohort_add"), cohort_form(rules=json.dumps(rules)))
        assert response.status_code == 302
        assert Cohort.objects.get(name="Pro users").rules == rules

    def test_bad_condition_error_appears_on_the_rules_field(self, admin_client):
        rules = {"all": [{"property": "plan", "op": "eq", "value": "pro"}, {"any": [{"property": "x", "op": "eqq", "value": 1}]}]}
        response = admin_client.post(reverse("admin:cohorts_cohort_add"), cohort_form(rules=json.dumps(rules)))
        assert response.status_code == 200
        errors = response.context["adminform"].form.errors
        assert errors["rules"][0].startswith("all[1].any[0]: unknown op 'eqq'")
        assert not Cohort.objects.exists()

    def test_invalid_json_says_where(self, admin_client):
        response = admin_client.post(reverse("admin:cohorts_cohort_add"), cohort_form(rules='{"all": [}'))
        errors = response.context["adminform"].form.errors
        assert errors["rules"] == ["This is not valid JSON: Expecting value at line 1, column 10."]

    def test_rules_cohort_needs_rules(self, admin_client):
        response = admin_client.post(reverse("admin:cohorts_cohort_add"), cohort_form())
        assert 'To include every profile, use {&quot;all&quot;: []}' in response.content.decode()

    def test_help_text_explains_the_language(self, admin_client):
        page = admin_client.get(reverse("admin:cohorts_cohort_add")).content.decode()
        assert "within_last_days" in page and "include profiles that lack the property" in page


class TestStaticCohorts:
    def test_textarea_replaces_the_list(self, admin_client):
        cohort = StaticCohortFactory(name="Beta")
        StaticMembershipFactory(cohort=cohort, distinct_id="old")
        url = reverse("admin:cohorts_cohort_change", args=[cohort.pk])
        response = admin_client.post(url, cohort_form(name="Beta", kind="static", members_text="a\nb\n\nb\n"), follow=True)
        assert "now has 2 distinct ids" in response.content.decode()
        assert sorted(StaticMembership.objects.filter(cohort=cohort).values_list("distinct_id", flat=True)) == ["a", "b"]

    def test_saving_without_a_list_keeps_it(self, admin_client):
        cohort = StaticCohortFactory(name="Beta")
        StaticMembershipFactory(cohort=cohort, distinct_id="keep")
        url = reverse("admin:cohorts_cohort_change", args=[cohort.pk])
        admin_client.post(url, cohort_form(name="Beta renamed", kind="static"))
        assert list(StaticMembership.objects.filter(cohort=cohort).values_list("distinct_id", flat=True)) == ["keep"]
        page = admin_client.get(url).content.decode()
        assert "1 distinct ids listed" in page

    def test_upload_replaces_the_list(self, admin_client):
        upload = SimpleUploadedFile("ids.csv", b"distinct_id\nu1\nu2\nu3\n")
        response = admin_client.post(
            reverse("admin:cohorts_cohort_add"), {**cohort_form(name="Upload", kind="static"), "members_file": upload}
        )
        assert response.status_code == 302
        cohort = Cohort.objects.get(name="Upload")
        assert StaticMembership.objects.filter(cohort=cohort).count() == 3

    def test_overlong_id_is_a_field_error(self, admin_client):
        response = admin_client.post(
            reverse("admin:cohorts_cohort_add"), cohort_form(kind="static", members_text="ok\n" + "x" * 300)
        )
        errors = response.context["adminform"].form.errors
        assert errors["members_text"] == ["Id number 2 is longer than 255 characters."]

    def test_members_on_a_rules_cohort_are_refused(self, admin_client):
        response = admin_client.post(
            reverse("admin:cohorts_cohort_add"),
            cohort_form(rules='{"all": []}', members_text="a"),
        )
        assert response.context["adminform"].form.errors["members_text"] == [
            "Listed members apply only to static cohorts."
        ]

    def test_clear_removes_every_id(self, admin_client):
        cohort = StaticCohortFactory(name="Beta")
        StaticMembershipFactory(cohort=cohort)
        url = reverse("admin:cohorts_cohort_change", args=[cohort.pk])
        admin_client.post(url, cohort_form(name="Beta", kind="static", clear_members="on"))
        assert not StaticMembership.objects.filter(cohort=cohort).exists()


class TestCohortMembers:
    def test_change_page_shows_count_and_preview(self, admin_client):
        cohort = CohortFactory(rules={"all": [{"property": "plan", "op": "eq", "value": "pro"}]})
        for i in range(3):
            ProfileFactory(distinct_id=f"pro-{i}", properties={"plan": "pro", "$email": f"p{i}@x.io"})
        ProfileFactory(distinct_id="free-0", properties={"plan": "free"})
        page = admin_client.get(reverse("admin:cohorts_cohort_change", args=[cohort.pk])).content.decode()
        assert "3 profiles match right now." in page
        assert "p2@x.io" in page and "free-0" not in page
        assert reverse("admin:cohorts_cohort_members_csv", args=[cohort.pk]) in page

    def test_a_cohort_of_millions_shows_the_planners_estimate_instead_of_counting(self, admin_client, monkeypatch):
        # 10M members took seconds to count on every view of the page; beyond
        # EXACT_COUNT_UP_TO (by ANALYZE's statistics) the page shows PostgreSQL's estimate.
        monkeypatch.setattr("cohortsync_site.database.EXACT_COUNT_UP_TO", 0)
        cohort = CohortFactory(rules={"all": [{"property": "plan", "op": "eq", "value": "pro"}]})
        for i in range(3):
            ProfileFactory(distinct_id=f"pro-{i}", properties={"plan": "pro", "$email": f"p{i}@x.io"})
        with CaptureQueriesContext(connection) as queries:
            page = admin_client.get(reverse("admin:cohorts_cohort_change", args=[cohort.pk])).content.decode()
        counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"] and "cohorts_profile" in q["sql"]]
        if connection.vendor == "postgresql":
            assert "About " in page and "profiles match right now (PostgreSQL&#x27;s estimate" in page
            assert counts == []
        else:
            # SQLite has no estimate: counted, as before.
            assert "3 profiles match right now." in page and counts

    def test_invalid_stored_rules_do_not_break_the_page(self, admin_client):
        cohort = CohortFactory(rules={"all": [{"property": "plan", "op": "like", "value": "p"}]})
        page = admin_client.get(reverse("admin:cohorts_cohort_change", args=[cohort.pk])).content.decode()
        assert "The stored rules are invalid: all[0]: unknown op &#x27;like&#x27;" in page

    def test_list_shows_cheap_definition_summary(self, admin_client):
        static = StaticCohortFactory(name="Static one")
        StaticMembershipFactory.create_batch(2, cohort=static)
        CohortFactory(name="Rules one", rules={"all": [{"property": "a", "op": "is_set"}, {"any": [{"property": "b", "op": "is_set"}]}]})
        page = admin_client.get(reverse("admin:cohorts_cohort_changelist")).content.decode()
        assert "2 listed ids" in page and "2 conditions" in page

    def test_download_members_csv_streams_every_member(self, admin_client):
        cohort = StaticCohortFactory(name="VIP list")
        ProfileFactory(distinct_id="v1", properties={"$email": "v1@x.io", "plan": "pro"})
        ProfileFactory(distinct_id="v2", properties={"tags": ["a", "b"]})
        ProfileFactory(distinct_id="other")
        for distinct_id in ("v1", "v2", "not-imported-yet"):
            StaticMembershipFactory(cohort=cohort, distinct_id=distinct_id)
        response = admin_client.get(reverse("admin:cohorts_cohort_members_csv", args=[cohort.pk]))
        assert response.streaming
        assert response["Content-Disposition"] == 'attachment; filename="vip-list-members.csv"'
        rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert rows == [
            ["distinct_id", "$email", "properties"],
            ["v1", "v1@x.io", '{"$email": "v1@x.io", "plan": "pro"}'],
            ["v2", "", '{"tags": ["a", "b"]}'],
        ]

    def test_download_escapes_cells_a_spreadsheet_would_run_as_formulas(self, admin_client):
        cohort = StaticCohortFactory()
        ProfileFactory(distinct_id="=HYPERLINK(\"http://evil\")", properties={"$email": "+1@x.io"})
        StaticMembershipFactory(cohort=cohort, distinct_id="=HYPERLINK(\"http://evil\")")
        response = admin_client.get(reverse("admin:cohorts_cohort_members_csv", args=[cohort.pk]))
        rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert rows[1][:2] == ["'=HYPERLINK(\"http://evil\")", "'+1@x.io"]

    def test_download_requires_view_permission(self, staff_client):
        cohort = CohortFactory()
        client = staff_client("view_profile")
        assert client.get(reverse("admin:cohorts_cohort_members_csv", args=[cohort.pk])).status_code == 403


class TestExportAction:
    def test_redirects_to_the_export_page_with_selected_ids(self, admin_client):
        first, second = CohortFactory(), CohortFactory()
        response = admin_client.post(
            reverse("admin:cohorts_cohort_changelist"),
            {"action": "export_to", "_selected_action": [second.pk, first.pk]},
        )
        assert response.status_code == 302
        assert response["Location"] == (
            reverse("admin:syncs_sync_export_cohorts") + f"?cohorts={first.pk},{second.pk}"
        )

    def test_only_users_who_can_export_see_export_to(self, staff_client):
        cohort = CohortFactory()
        changelist = reverse("admin:cohorts_cohort_changelist")
        viewer = staff_client("view_cohort", "change_cohort")
        assert "export_to" not in action_names(viewer.get(changelist))
        assert "Export to…" not in viewer.get(reverse("admin:cohorts_cohort_change", args=[cohort.pk])).content.decode()

        exporter = staff_client("view_cohort", "view_sync", "add_sync", "run_sync")
        assert "export_to" in action_names(exporter.get(changelist))
        assert "Export to…" in exporter.get(reverse("admin:cohorts_cohort_change", args=[cohort.pk])).content.decode()

    def test_missing_export_page_shows_an_error(self, admin_client, monkeypatch):
        from cohorts import admin as cohort_admin

        monkeypatch.setattr(cohort_admin, "EXPORT_URL_NAME", "admin:no_such_view")
        cohort = CohortFactory()
        response = admin_client.post(
            reverse("admin:cohorts_cohort_changelist"),
            {"action": "export_to", "_selected_action": [cohort.pk]},
            follow=True,
        )
        assert "Exporting is not available" in response.content.decode()
