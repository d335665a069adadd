"""The destination admin: secrets never shown, per-kind validation, connection checks."""

from __future__ import annotations

import pytest
import requests
import responses
from cryptography.fernet import Fernet
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import override_settings
from django.urls import reverse

from destinations.encryption import encrypt_secret
from destinations.errors import AuthenticationError
from destinations.models import Destination
from tests.destinations.destadmin_fakes import fake_connector
from tests.factories import DestinationFactory, SyncFactory, UserFactory
from tests.sandbox_destinations import sandbox_destination

pytestmark = pytest.mark.django_db

SECRET = "Sup3r-s3cret-value"
CHANGELIST = reverse("admin:destinations_destination_changelist")
ADD = reverse("admin:destinations_destination_add")


def change_url(destination: Destination) -> str:
    return reverse("admin:destinations_destination_change", args=[destination.pk])


def raw_secret(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT client_secret FROM {Destination._meta.db_table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def form_data(**overrides: str) -> dict[str, str]:
    data = {
        "name": "Growth DE",
        "kind": "sfmc_data_extension",
        "subdomain": "mc-test-tenant",
        "account_id": "",
        "auth_base_url": "",
        "data_extension_key": "COHORTS_DE",
        "key_column": "SubscriberKey",
        "attribute_set": "",
        "base_url": "",
        "client_id": "client-id",
        "new_client_secret": "",
        "options": "{}",
        "_save": "Save",
    }
    data.update(overrides)
    return data


def errors_of(response) -> dict[str, list[str]]:
    assert response.status_code == 200, "expected the form to be shown again with errors"
    return {name: list(errors) for name, errors in response.context["adminform"].form.errors.items()}


# --- Non-disclosure ----------------------------------------------------------------------


def test_change_page_shows_neither_plaintext_nor_ciphertext(admin_client):
    destination = DestinationFactory(client_secret=SECRET)
    ciphertext = raw_secret(destination.pk)

    html = admin_client.get(change_url(destination)).content.decode()

    assert SECRET not in html
    assert ciphertext not in html
    assert ciphertext.split(":", 1)[1][:20] not in html
    assert "Stored secret" in html and ">set<" in html.replace("\n", "").replace(" ", "")


def test_change_page_says_not_set_when_there_is_no_secret(admin_client):
    destination = DestinationFactory(client_secret="")

    html = admin_client.get(change_url(destination)).content.decode()

    assert "not set" in html


def test_searching_the_changelist_for_the_secret_matches_nothing(admin_client):
    DestinationFactory(name="Growth DE", client_secret=SECRET)

    by_secret = admin_client.get(CHANGELIST, {"q": SECRET})
    by_name = admin_client.get(CHANGELIST, {"q": "Growth"})

    assert by_secret.context["cl"].result_count == 0
    assert by_name.context["cl"].result_count == 1
    assert SECRET not in by_name.content.decode()


@pytest.mark.parametrize(
    "lookup", ["client_secret__startswith", "client_secret", "client_secret__isnull"]
)
def test_filtering_the_changelist_on_the_secret_is_refused(admin_client, lookup):
    DestinationFactory(client_secret="x-secret")

    response = admin_client.get(CHANGELIST, {lookup: "x"})

    assert response.status_code == 400


def test_blank_secret_submission_keeps_the_stored_secret(admin_client):
    destination = DestinationFactory(client_secret=SECRET)

    response = admin_client.post(change_url(destination), form_data(name="Renamed"))

    assert response.status_code == 302
    destination = Destination.objects.get(pk=destination.pk)
    assert destination.name == "Renamed"
    assert destination.client_secret == SECRET


def test_new_secret_replaces_the_stored_one(admin_client):
    destination = DestinationFactory(client_secret=SECRET)

    admin_client.post(change_url(destination), form_data(new_client_secret="  fresh-secret  "))

    assert Destination.objects.get(pk=destination.pk).client_secret == "fresh-secret"


def test_remove_checkbox_clears_the_stored_secret(admin_client):
    destination = DestinationFactory(client_secret=SECRET)

    response = admin_client.post(change_url(destination), form_data(clear_client_secret="on"))

    assert response.status_code == 302
    assert raw_secret(destination.pk) == ""


def test_remove_and_new_secret_together_is_an_error(admin_client):
    destination = DestinationFactory(client_secret=SECRET)

    response = admin_client.post(
        change_url(destination), form_data(clear_client_secret="on", new_client_secret="other")
    )

    assert "not both" in errors_of(response)["clear_client_secret"][0]
    assert Destination.objects.get(pk=destination.pk).client_secret == SECRET


def test_rejected_form_does_not_echo_the_typed_secret(admin_client):
    response = admin_client.post(ADD, form_data(subdomain="", new_client_secret="typed-secret-9"))

    assert "subdomain" in errors_of(response)
    assert "typed-secret-9" not in response.content.decode()


def test_history_names_the_secret_field_but_never_its_value(admin_client):
    destination = DestinationFactory(client_secret=SECRET)

    admin_client.post(change_url(destination), form_data(new_client_secret="fresh-secret"))

    entry = LogEntry.objects.get(object_id=str(destination.pk))
    message = entry.get_change_message()
    assert "Client secret" in message
    assert "fresh-secret" not in entry.change_message
    assert SECRET not in entry.change_message


def test_secret_is_marked_sensitive_for_error_reports(admin_client):
    destination = DestinationFactory()

    response = admin_client.post(change_url(destination), form_data(new_client_secret="x"))

    assert response.wsgi_request.sensitive_post_parameters == ("new_client_secret",)


def test_secret_is_not_in_str_or_list_columns(admin_client):
    destination = DestinationFactory(name="Growth DE", client_secret=SECRET)

    html = admin_client.get(CHANGELIST).content.decode()

    assert str(destination) == "Growth DE"
    assert SECRET not in html
    assert raw_secret(destination.pk) not in html


def test_change_page_still_works_when_the_secret_cannot_be_decrypted(admin_client):
    destination = DestinationFactory()
    with override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        foreign = encrypt_secret("lost")
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Destination._meta.db_table} SET client_secret = %s WHERE id = %s",
            [foreign, destination.pk],
        )

    assert admin_client.get(CHANGELIST).status_code == 200
    assert admin_client.get(change_url(destination)).status_code == 200
    response = admin_client.post(change_url(destination), form_data(new_client_secret="re-entered"))

    assert response.status_code == 302
    assert Destination.objects.get(pk=destination.pk).client_secret == "re-entered"


# --- Creating and validating -------------------------------------------------------------


def test_create_sfmc_data_extension_destination(admin_client):
    response = admin_client.post(ADD, form_data(new_client_secret=SECRET, account_id=" 7281698 "))

    assert response.status_code == 302
    destination = Destination.objects.get(name="Growth DE")
    assert destination.client_secret == SECRET
    assert destination.account_id == "7281698"
    assert destination.options == {}


def test_secret_is_required_on_create(admin_client):
    response = admin_client.post(ADD, form_data())

    assert "Enter the client secret" in errors_of(response)["new_client_secret"][0]
    assert not Destination.objects.exists()


def test_pasted_sfmc_url_becomes_the_subdomain(admin_client):
    admin_client.post(
        ADD,
        form_data(
            new_client_secret=SECRET,
            subdomain="https://mc563885gzs27c5t9-63k636ttgm.auth.marketingcloudapis.com/",
        ),
    )

    assert Destination.objects.get().subdomain == "mc563885gzs27c5t9-63k636ttgm"


def test_subdomain_that_is_not_sfmc_is_a_field_error(admin_client):
    response = admin_client.post(ADD, form_data(new_client_secret=SECRET, subdomain="https://example.com/x"))

    assert "not an SFMC subdomain" in errors_of(response)["subdomain"][0]


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("data_extension_key", "external key"),
        ("key_column", "SubscriberKey or Contact Key"),
        ("subdomain", "Enter the SFMC subdomain"),
        ("client_id", "client id"),
    ],
)
def test_data_extension_required_fields(admin_client, missing, message):
    response = admin_client.post(ADD, form_data(new_client_secret=SECRET, **{missing: ""}))

    assert message in errors_of(response)[missing][0]


def test_contacts_destination_defaults_to_email_demographics_and_drops_de_fields(admin_client):
    response = admin_client.post(
        ADD, form_data(kind="sfmc_contacts", new_client_secret=SECRET, base_url="x")
    )

    assert response.status_code == 302
    destination = Destination.objects.get()
    assert destination.attribute_set == "Email Demographics"
    assert destination.data_extension_key == ""
    assert destination.key_column == ""
    assert destination.base_url == ""


def test_marketo_destination_needs_a_base_url(admin_client):
    response = admin_client.post(ADD, form_data(kind="marketo", new_client_secret=SECRET))

    assert "REST endpoint" in errors_of(response)["base_url"][0]


def test_marketo_pasted_rest_url_is_normalised_and_sfmc_fields_dropped(admin_client):
    response = admin_client.post(
        ADD,
        form_data(
            kind="marketo",
            new_client_secret=SECRET,
            base_url="https://123-ABC-456.mktorest.com/rest/",
        ),
    )

    assert response.status_code == 302
    destination = Destination.objects.get()
    assert destination.base_url == "https://123-ABC-456.mktorest.com"
    assert (destination.subdomain, destination.data_extension_key, destination.key_column) == ("", "", "")


@override_settings(COHORTSYNC_ALLOWED_API_HOSTS=["127.0.0.1"])
def test_api_urls_must_be_official_or_explicitly_allowed(admin_client):
    refused = admin_client.post(
        ADD, form_data(new_client_secret=SECRET, auth_base_url="http://evil.example.com/sfmc/auth")
    )
    marketo_http = admin_client.post(
        ADD,
        form_data(kind="marketo", new_client_secret=SECRET,
                  base_url="http://123-ABC-456.mktorest.com"),
    )
    allowed = admin_client.post(
        ADD,
        form_data(new_client_secret=SECRET, auth_base_url="http://127.0.0.1:8765/sfmc/auth/v2/token"),
    )

    assert "COHORTSYNC_ALLOWED_API_HOSTS" in errors_of(refused)["auth_base_url"][0]
    assert "only https on the official hosts" in errors_of(marketo_http)["base_url"][0]
    assert allowed.status_code == 302
    assert Destination.objects.get().auth_base_url == "http://127.0.0.1:8765/sfmc/auth"


def test_invalid_mid_is_a_field_error(admin_client):
    response = admin_client.post(ADD, form_data(new_client_secret=SECRET, account_id="BU one"))

    assert "not a MID" in errors_of(response)["account_id"][0]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ('{"batch_size": 300}', "Unknown option 'batch_size'"),
        ('{"rowset_batch_size": "fifty"}', "must be a whole number"),
        ('{"max_concurrency": 99}', "between 1 and 32"),
    ],
)
def test_options_are_validated_per_kind(admin_client, options, message):
    response = admin_client.post(ADD, form_data(new_client_secret=SECRET, options=options))

    assert message in errors_of(response)["options"][0]


def test_valid_options_are_saved(admin_client):
    admin_client.post(
        ADD, form_data(new_client_secret=SECRET, options='{"requests_per_second": 5, "max_concurrency": 2}')
    )

    assert Destination.objects.get().options == {"requests_per_second": 5.0, "max_concurrency": 2}


def test_kind_cannot_change_once_syncs_use_the_destination(admin_client):
    destination = DestinationFactory()
    SyncFactory(destination=destination)

    response = admin_client.post(
        change_url(destination),
        form_data(kind="marketo", base_url="https://123-ABC-456.mktorest.com"),
    )

    assert "cannot change" in errors_of(response)["kind"][0]


# --- Listing and connection checks -------------------------------------------------------


def test_changelist_shows_connection_status_and_sync_counts(admin_client):
    connected = DestinationFactory(name="Connected one")
    failing = DestinationFactory(name="Failing one")
    DestinationFactory(name="Fresh one")
    SyncFactory.create_batch(3, destination=connected)
    with fake_connector():
        admin_client.post(CHANGELIST, {"action": "test_connection", "_selected_action": [connected.pk]})
    with fake_connector(AuthenticationError("SFMC refused the client id.", code="invalid_client")):
        admin_client.post(CHANGELIST, {"action": "test_connection", "_selected_action": [failing.pk]})

    response = admin_client.get(CHANGELIST)
    html = response.content.decode()

    assert "Connected ✓" in html
    assert "SFMC refused the client id. [invalid_client]" in html
    assert "Never checked" in html
    rows = {d.name: d for d in response.context["cl"].result_list}
    assert rows["Connected one"].sync_count == 3


def test_changelist_filters_by_connection_state_and_kind(admin_client):
    ok = DestinationFactory(name="ok")
    DestinationFactory(name="never")
    DestinationFactory(name="mk", marketo=True)
    with fake_connector():
        admin_client.post(CHANGELIST, {"action": "test_connection", "_selected_action": [ok.pk]})

    connected = admin_client.get(CHANGELIST, {"connection": "connected"}).context["cl"].result_list
    never = admin_client.get(CHANGELIST, {"connection": "never"}).context["cl"].result_list
    marketo = admin_client.get(CHANGELIST, {"kind__exact": "marketo"}).context["cl"].result_list

    assert [d.name for d in connected] == ["ok"]
    assert sorted(d.name for d in never) == ["mk", "never"]
    assert [d.name for d in marketo] == ["mk"]


def test_test_connection_action_stores_status_and_reports_each_destination(admin_client):
    first, second = DestinationFactory(name="First"), DestinationFactory(name="Second")

    with fake_connector() as configs:
        response = admin_client.post(
            CHANGELIST,
            {"action": "test_connection", "_selected_action": [first.pk, second.pk]},
            follow=True,
        )

    assert sorted(c.name for c in configs) == ["First", "Second"]
    messages = [str(m) for m in response.context["messages"]]
    assert "First: Connected: read 2 columns of COHORTS_DE" in messages
    assert Destination.objects.filter(is_connected=True).count() == 2


def test_test_connection_action_stores_the_error(admin_client):
    destination = DestinationFactory(name="Broken")

    with fake_connector(AuthenticationError("SFMC refused the client secret.")):
        response = admin_client.post(
            CHANGELIST, {"action": "test_connection", "_selected_action": [destination.pk]}, follow=True
        )

    assert "Broken: SFMC refused the client secret." in [str(m) for m in response.context["messages"]]
    destination.refresh_from_db()
    assert destination.is_connected is False
    assert destination.connection_error == "SFMC refused the client secret."


def test_test_connection_button_on_the_change_page(admin_client):
    destination = DestinationFactory()
    url = reverse("admin:destinations_destination_test_connection", args=[destination.pk])

    assert url in admin_client.get(change_url(destination)).content.decode()
    with fake_connector():
        response = admin_client.post(url, follow=True)

    assert response.redirect_chain[-1][0] == change_url(destination)
    html = response.content.decode()
    assert "Connected: read 2 columns of COHORTS_DE" in html
    assert "Connected ✓: read 2 columns of COHORTS_DE" in html


def test_a_marketo_connection_says_connected_once(admin_client, sandbox):
    destination = sandbox_destination(sandbox, "marketo", name="Marketo sandbox")
    url = reverse("admin:destinations_destination_test_connection", args=[destination.pk])

    response = admin_client.post(url, follow=True)

    [message] = [str(m) for m in response.context["messages"]]
    host = sandbox.marketo_base_url.split("//")[1].split("/")[0]
    assert message.startswith(f"Marketo sandbox: Connected: Marketo at {host}")
    assert "Connected ✓: Marketo at" in response.content.decode()
    assert "Connected: Connected" not in response.content.decode()


@override_settings(COHORTSYNC_INTERACTIVE_TIMEOUT_SECONDS=0.5)
def test_test_connection_of_an_unreachable_destination_answers_in_seconds(admin_client):
    import socket
    import time

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    port = silent.getsockname()[1]
    destination = DestinationFactory(marketo=True, name="Silent", base_url=f"http://127.0.0.1:{port}")
    url = reverse("admin:destinations_destination_test_connection", args=[destination.pk])
    started = time.monotonic()
    try:
        response = admin_client.post(url, follow=True)
    finally:
        silent.close()

    assert time.monotonic() - started < 3
    [message] = [str(m) for m in response.context["messages"]]
    assert message.startswith(f"Silent: http://127.0.0.1:{port}/identity/oauth/token did not answer within 0.5s")


def test_test_connection_button_refuses_get(admin_client):
    destination = DestinationFactory()

    with fake_connector() as configs:
        response = admin_client.get(
            reverse("admin:destinations_destination_test_connection", args=[destination.pk])
        )

    assert response.status_code == 405
    assert configs == []


def view_only_client(client):
    user = UserFactory(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_destination"))
    client.force_login(user)
    return client


def test_test_connection_needs_change_permission(client):
    destination = DestinationFactory()
    view_only_client(client)

    with fake_connector() as configs:
        response = client.post(
            reverse("admin:destinations_destination_test_connection", args=[destination.pk])
        )

    assert response.status_code == 403
    assert configs == []


# --- Sandbox inspection ------------------------------------------------------------------

SFMC_SANDBOX = "http://127.0.0.1:8765/sfmc/auth"
SFMC_STATE = "http://127.0.0.1:8765/sfmc/_sandbox/state"
MARKETO_STATE = "http://127.0.0.1:8765/marketo/_sandbox/state"


def sandbox_url(destination: Destination) -> str:
    return reverse("admin:destinations_destination_sandbox_state", args=[destination.pk])


@responses.activate
def test_sandbox_page_shows_the_rows_the_data_extension_received(admin_client):
    destination = DestinationFactory(auth_base_url=SFMC_SANDBOX)
    SyncFactory(destination=destination, target_field="Cohort_Pro_Users")
    responses.get(
        SFMC_STATE,
        json={
            "data_extensions": {
                "COHORTS_DE": {
                    "name": "Cohorts",
                    "fields": [{"name": "SubscriberKey", "type": "Text"},
                               {"name": "Cohort_Pro_Users", "type": "Boolean"}],
                    "rows": [{"SubscriberKey": "ada@example.com", "Cohort_Pro_Users": True}],
                    "row_count": 1,
                }
            },
            "attribute_sets": [{"name": "Email Demographics", "attributes": ["Plan"]}],
            "calls": {"POST /v2/token": 1, "access_token": "tok-should-not-show"},
        },
    )

    response = admin_client.get(sandbox_url(destination))
    html = response.content.decode()

    assert response.status_code == 200
    assert responses.calls[0].request.url == SFMC_STATE + "?limit=200"
    assert "Data extension Cohorts (external key COHORTS_DE)" in html
    assert "ada@example.com" in html
    assert '<th scope="col" class="highlight">Cohort_Pro_Users</th>' in html
    assert "Email Demographics" in html
    assert "tok-should-not-show" not in html


@responses.activate
def test_sandbox_page_for_marketo_lists_leads(admin_client):
    destination = DestinationFactory(marketo=True, base_url="http://127.0.0.1:8765/marketo")
    responses.get(
        MARKETO_STATE,
        json={"leads": [{"id": 1, "email": "ada@example.com", "cohortProUsers": True}],
              "lead_count": 1, "fields": [{"name": "cohortProUsers", "dataType": "boolean"}],
              "bulk_jobs": []},
    )

    html = admin_client.get(sandbox_url(destination)).content.decode()

    assert responses.calls[0].request.url == MARKETO_STATE + "?limit=200"
    assert "Leads" in html and "ada@example.com" in html and "cohortProUsers" in html
    assert "Bulk import jobs" in html


def test_sandbox_page_explains_an_unreachable_sandbox(admin_client):
    # Port 9 (discard) on loopback: nothing listens there.
    destination = DestinationFactory(auth_base_url="http://127.0.0.1:9/sfmc/auth")

    response = admin_client.get(sandbox_url(destination))

    assert response.status_code == 200
    assert "did not answer" in response.content.decode()
    assert "run_sandbox" in response.content.decode()


@responses.activate
def test_sandbox_page_tolerates_unexpected_shapes(admin_client):
    destination = DestinationFactory(auth_base_url=SFMC_SANDBOX)
    responses.get(SFMC_STATE, json={"data_extensions": ["odd"], "contacts": {"count": 0}, "new_thing": 5})

    response = admin_client.get(sandbox_url(destination))

    assert response.status_code == 200
    assert "New thing" in response.content.decode()


@responses.activate
def test_sandbox_page_reports_a_sandbox_without_inspection(admin_client):
    destination = DestinationFactory(auth_base_url=SFMC_SANDBOX)
    responses.get(SFMC_STATE, status=501, body="not implemented yet")

    html = admin_client.get(sandbox_url(destination)).content.decode()

    assert "HTTP 501" in html


def test_sandbox_page_for_a_real_destination_says_there_is_nothing_to_show(admin_client):
    destination = DestinationFactory()

    with responses.RequestsMock() as mocked:
        html = admin_client.get(sandbox_url(destination)).content.decode()
        assert len(mocked.calls) == 0

    assert "talks to the real platform" in html
    assert sandbox_url(destination) not in admin_client.get(change_url(destination)).content.decode()


@responses.activate
def test_sandbox_link_is_on_the_change_page_of_sandbox_destinations(admin_client):
    destination = DestinationFactory(auth_base_url=SFMC_SANDBOX)

    assert sandbox_url(destination) in admin_client.get(change_url(destination)).content.decode()


def test_sandbox_page_needs_view_permission(client):
    destination = DestinationFactory(auth_base_url=SFMC_SANDBOX)
    client.force_login(UserFactory(is_staff=True))

    assert client.get(sandbox_url(destination)).status_code == 403


def test_sandbox_page_shows_what_the_marketo_emulator_received_over_http(admin_client, sandbox):
    base = sandbox.marketo_base_url
    token = requests.post(
        f"{base}/identity/oauth/token",
        params={"grant_type": "client_credentials", "client_id": "sandbox-client-id",
                "client_secret": "sandbox-client-secret"},
        timeout=10,
    ).json()["access_token"]
    pushed = requests.post(
        f"{base}/rest/v1/leads.json",
        headers={"Authorization": f"Bearer {token}"},
        json={"action": "createOrUpdate", "lookupField": "email",
              "input": [{"email": "grace@example.com"}]},
        timeout=10,
    )
    assert pushed.json()["success"] is True
    destination = DestinationFactory(marketo=True, base_url=base)

    html = admin_client.get(sandbox_url(destination)).content.decode()

    assert "grace@example.com" in html
    assert "1 in total" in html
    assert token not in html
