"""Asking a destination about a sync's target field while a person waits: read-only, one
attempt per request, bounded in time, and a clear answer when it cannot be reached."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import requests
from django.test import override_settings

from destinations.base import SyncTarget, TargetStatus
from destinations.errors import TransientError
from destinations.http import HttpTransport, RetryPolicy, interactive_calls
from destinations.services import destination_targets_check
from tests.factories import DestinationFactory
from tests.sandbox_destinations import DE_KEY, sandbox_destination

pytestmark = pytest.mark.django_db


def target(field: str, **options: object) -> SyncTarget:
    return SyncTarget(field=field, identity_property="$email", options=options)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


# --- interactive_calls -------------------------------------------------------------------


def test_interactive_calls_try_once_and_end_within_the_deadline(silent_port: int) -> None:
    sleeps: list[float] = []
    transport = HttpTransport(retry=RetryPolicy(max_attempts=5), sleep=sleeps.append)
    started = time.monotonic()

    with interactive_calls(0.5), pytest.raises(TransientError) as raised:
        transport.request("GET", f"http://127.0.0.1:{silent_port}/fields")

    assert time.monotonic() - started < 3
    assert transport.api_calls == 1 and sleeps == []
    assert raised.value.code == "timeout"
    assert "did not answer within 0.5s" in str(raised.value)


def test_outside_interactive_calls_the_transport_retries_as_before(monkeypatch) -> None:
    sleeps: list[float] = []
    transport = HttpTransport(retry=RetryPolicy(max_attempts=3, base_delay=0.01), sleep=sleeps.append)

    def refuse(*args: object, **kwargs: object) -> None:
        raise requests.ConnectionError("refused")

    monkeypatch.setattr(transport.session, "request", refuse)
    with pytest.raises(TransientError):
        transport.request("GET", "http://127.0.0.1:9/x")

    assert transport.api_calls == 3 and len(sleeps) == 2


# --- Each kind against its emulator ------------------------------------------------------


def test_data_extension_column_exists_or_will_be_created_without_creating_it(sandbox) -> None:
    destination = sandbox_destination(sandbox, "sfmc_data_extension")

    exists, missing, refused_type, not_allowed = destination_targets_check(
        destination=destination,
        targets=[target("In_Demo_Cohort"), target("Pro_users"), target("Email"),
                 target("Other", create_missing_field=False)],
    )

    assert exists.status == TargetStatus.EXISTS
    assert missing.status == TargetStatus.WILL_BE_CREATED
    assert "has no column 'Pro_users' yet: the first run creates it as a Boolean column" in missing.message
    assert refused_type.refused and "is EmailAddress" in refused_type.message
    assert not_allowed.refused and "allow CohortSync to create missing columns" in not_allowed.message
    columns = {field["name"] for field in sandbox.sandboxes.sfmc.data_extensions[DE_KEY.lower()].fields}
    assert "Pro_users" not in columns  # asking created nothing


def test_a_missing_marketo_field_is_refused_with_how_to_create_it(sandbox) -> None:
    destination = sandbox_destination(sandbox, "marketo")

    good, missing, read_only = destination_targets_check(
        destination=destination,
        targets=[target("cohortProUsers"), target("cohortNoSuchField"), target("cohortCrmLocked")],
    )

    assert good.status == TargetStatus.EXISTS
    assert missing.refused
    assert missing.message.startswith("Marketo has no lead field 'cohortNoSuchField'. Create a Boolean custom field")
    assert read_only.refused and "read-only for the API" in read_only.message


def test_a_contacts_attribute_must_exist(sandbox) -> None:
    destination = sandbox_destination(sandbox, "sfmc_contacts")

    good, missing = destination_targets_check(
        destination=destination, targets=[target("Cohort_Demo"), target("Cohort_New")]
    )

    assert good.status == TargetStatus.EXISTS
    assert missing.refused and "has no attribute 'Cohort_New'" in missing.message


def test_wrong_credentials_leave_the_field_unchecked_with_the_reason(sandbox) -> None:
    destination = sandbox_destination(sandbox, "marketo", client_secret="wrong-secret")

    [check] = destination_targets_check(destination=destination, targets=[target("cohortProUsers")])

    assert check.status == TargetStatus.UNCHECKED
    assert check.message.startswith(f"Could not check 'cohortProUsers' against {destination.name}:")
    assert "wrong-secret" not in check.message


@override_settings(COHORTSYNC_INTERACTIVE_TIMEOUT_SECONDS=0.5)
def test_an_unreachable_destination_answers_within_the_interactive_timeout(silent_port: int) -> None:
    destination = DestinationFactory(marketo=True, base_url=f"http://127.0.0.1:{silent_port}")
    started = time.monotonic()

    [check] = destination_targets_check(destination=destination, targets=[target("cohortProUsers")])

    assert time.monotonic() - started < 3
    assert check.status == TargetStatus.UNCHECKED
    assert f"127.0.0.1:{silent_port}" in check.message and "did not answer" in check.message
