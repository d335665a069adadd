"""Webhook URLs are read by the destinations' URL policy: what is checked is what is called."""

from __future__ import annotations

import pytest

from alerts.webhooks import WebhookUrlRefused, webhook_url_check


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://169.254.169.254\\.hooks.slack.com/services/T/B/X", "is not usable"),
        ("https://hooks.slack.com@127.0.0.1/services/T/B/X", "is not usable"),
        ("https://hooks.slack.com./services/T/B/X", "is not usable"),
        ("https://10.0.0.5/services/T/B/X", "must point at a public host name"),
        ("https://0x7f.0.0.1/services/T/B/X", "is not usable"),
        ("https://metadata/computeMetadata", "must point at a public host name"),
        ("https://hooks.internal/services/T/B/X", "must point at a public host name"),
        ("http://hooks.slack.com/services/T/B/X", "must use https"),
    ],
)
def test_hostile_webhook_urls_are_refused_without_repeating_the_path(url: str, message: str) -> None:
    with pytest.raises(WebhookUrlRefused) as refused:
        webhook_url_check(url)

    assert message in refused.value.message
    assert "/services/T/B/X" not in refused.value.message


def test_https_to_a_public_host_name_is_allowed() -> None:
    webhook_url_check("https://hooks.slack.com/services/T000/B000/XXXX")
