"""Throttling and server errors: retried with SFMC's Retry-After or with backoff."""

from __future__ import annotations

import pytest
import responses

from destinations.base import MembershipChange
from destinations.errors import RateLimitedError
from destinations.sfmc.client import sfmc_budget_limits
from destinations.sfmc.settings import SfmcOptions
from destinations.sfmc_data_extension.connector import DataExtensionConnector
from tests.destinations.sfmc.conftest import OFFICIAL_AUTH, OFFICIAL_REST, official_config, target


def changes(count: int, prefix: str = "u") -> list[MembershipChange]:
    return [MembershipChange(identity=f"{prefix}{i}", is_member=True) for i in range(count)]


def test_429_with_retry_after_waits_what_sfmc_asks(make_de, sfmc, sleeps):
    connector = make_de()
    connector.check_connection()
    sfmc.configure(throttle_next=2, throttle_style="50100", retry_after=5)

    outcomes = connector.push(target(), changes(3))

    assert all(o.ok for o in outcomes)
    assert sleeps.calls == [5.0, 5.0]
    assert len(sfmc.rows("CohortSync_Demo")) == 3


def test_429_blocked_without_retry_after_backs_off_with_jitter(make_de, sfmc, sleeps):
    connector = make_de()
    connector.check_connection()
    sfmc.configure(throttle_next=2, throttle_style="50200")

    outcomes = connector.push(target(), changes(2))

    assert all(o.ok for o in outcomes)
    first, second = sleeps.calls
    assert 0.25 <= first <= 0.5 and 0.5 <= second <= 1.0


def test_plain_text_429_is_retried(make_de, sfmc, sleeps):
    connector = make_de()
    connector.check_connection()
    sfmc.configure(throttle_next=1, throttle_style="text")

    assert all(o.ok for o in connector.push(target(), changes(2)))
    assert len(sleeps.calls) == 1


def test_server_errors_are_retried(make_de, sfmc, sleeps):
    connector = make_de()
    connector.check_connection()
    sfmc.configure(fail_next=2)

    assert all(o.ok for o in connector.push(target(), changes(4)))
    assert len(sleeps.calls) == 2


def test_persistent_throttling_says_how_to_slow_down(make_de, sfmc):
    connector = make_de()
    connector.check_connection()
    sfmc.configure(throttle_next=50, throttle_style="50200")

    with pytest.raises(RateLimitedError) as caught:
        connector.push(target(), changes(2))

    assert "requests_per_second" in str(caught.value)
    assert sfmc.rows("CohortSync_Demo") == []


@responses.activate
def test_retry_after_longer_than_a_run_can_wait_is_raised(sleeps):
    responses.add(responses.POST, f"{OFFICIAL_AUTH}/v2/token", json={
        "access_token": "t", "expires_in": 1079, "rest_instance_url": OFFICIAL_REST})
    responses.add(
        responses.POST, f"{OFFICIAL_REST}hub/v1/dataevents/key:Cohorts/rowset", status=429,
        headers={"Retry-After": "3600"}, json={"message": "Rate limit exceeded", "errorcode": 50100},
    )

    with pytest.raises(RateLimitedError) as caught:
        DataExtensionConnector(official_config(), sleep=sleeps).push(target(), changes(1))

    assert caught.value.retry_after == 3600
    assert sleeps.calls == []


def test_fractional_request_rate_becomes_one_call_per_interval():
    limits = sfmc_budget_limits(SfmcOptions(requests_per_second=0.5))

    assert (limits.window_calls, limits.window_seconds, limits.paced) == (1, 2.0, True)
    # Paced: one start per window and twice its margin (2 s + 2 × (10 ms + 1 %)).
    assert (limits.window.calls, limits.window.seconds) == (1, pytest.approx(2.06))
