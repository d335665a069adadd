"""What people paste into destination settings is normalised, or refused with a reason."""

from __future__ import annotations

import pytest

from destinations.marketo.settings import normalize_marketo_base_url
from destinations.sfmc.settings import normalize_sfmc_subdomain, validate_sfmc_account_id
from destinations.validation import SettingError, validate_destination_options

SUB = "mc563885gzs27c5t9-63k636ttgm"


@pytest.mark.parametrize(
    "pasted",
    [
        SUB,
        f"  {SUB}  ",
        f"{SUB}/",
        f"https://{SUB}.auth.marketingcloudapis.com/",
        f"https://{SUB}.auth.marketingcloudapis.com/v2/token",
        f"https://{SUB}.rest.marketingcloudapis.com/",
        f"https://{SUB}.soap.marketingcloudapis.com/Service.asmx",
        f"{SUB}.auth.marketingcloudapis.com",
        f"HTTPS://{SUB.upper()}.AUTH.MARKETINGCLOUDAPIS.COM",
    ],
)
def test_sfmc_subdomain_is_extracted_from_what_people_paste(pasted):
    assert normalize_sfmc_subdomain(pasted).lower() == SUB


@pytest.mark.parametrize(
    ("pasted", "message"),
    [
        ("", "Enter the SFMC subdomain"),
        ("   ", "Enter the SFMC subdomain"),
        ("https://example.com/", "not an SFMC subdomain or API URL"),
        ("https://mcabc.auth.marketingcloudapis.com.evil.com/", "not an SFMC subdomain or API URL"),
        ("mc_abc", "only letters, digits and hyphens"),
        ("mc abc", "only letters, digits and hyphens"),
    ],
)
def test_sfmc_subdomain_refusals_say_what_to_enter(pasted, message):
    with pytest.raises(SettingError, match=message):
        normalize_sfmc_subdomain(pasted)


@pytest.mark.parametrize(
    ("pasted", "expected"),
    [
        ("https://123-ABC-456.mktorest.com", "https://123-ABC-456.mktorest.com"),
        ("https://123-ABC-456.mktorest.com/", "https://123-ABC-456.mktorest.com"),
        ("https://123-ABC-456.mktorest.com/rest", "https://123-ABC-456.mktorest.com"),
        ("https://123-ABC-456.mktorest.com/rest/", "https://123-ABC-456.mktorest.com"),
        ("https://123-ABC-456.mktorest.com/REST/v1/leads.json?x=1", "https://123-ABC-456.mktorest.com"),
        ("https://123-ABC-456.mktorest.com/identity", "https://123-ABC-456.mktorest.com"),
        ("https://123-ABC-456.mktorest.com/identity/oauth/token", "https://123-ABC-456.mktorest.com"),
        ("https://123-ABC-456.mktorest.com/bulk/v1/leads.json", "https://123-ABC-456.mktorest.com"),
        ("123-ABC-456.mktorest.com/rest", "https://123-ABC-456.mktorest.com"),
        ("http://127.0.0.1:8765/marketo/rest", "http://127.0.0.1:8765/marketo"),
        ("http://127.0.0.1:8765/marketo/", "http://127.0.0.1:8765/marketo"),
        # A proxy prefix that merely starts like an API segment is kept.
        ("https://proxy.example.com/restful", "https://proxy.example.com/restful"),
        ("https://proxy.example.com/restful/rest/v1", "https://proxy.example.com/restful"),
    ],
)
def test_marketo_base_url_keeps_only_the_endpoint(pasted, expected):
    assert normalize_marketo_base_url(pasted) == expected


@pytest.mark.parametrize(
    ("pasted", "message"),
    [
        ("", "Enter the Marketo REST endpoint"),
        ("ftp://123-ABC-456.mktorest.com", "is not a URL"),
        ("https://", "is not a URL"),
        ("https://123-ABC-456.mktorest.com:port/rest", "is not a URL"),
        ("https://user:pw@123-ABC-456.mktorest.com/rest", "Remove the user name and password"),
    ],
)
def test_marketo_base_url_refusals(pasted, message):
    with pytest.raises(SettingError, match=message):
        normalize_marketo_base_url(pasted)


def test_credentials_pasted_in_a_url_are_not_echoed_back():
    with pytest.raises(SettingError) as excinfo:
        normalize_marketo_base_url("https://user:hunter2@123-ABC-456.mktorest.com")
    assert "hunter2" not in str(excinfo.value)


def test_account_id_must_be_a_number():
    assert validate_sfmc_account_id(" 7281698 ") == "7281698"
    assert validate_sfmc_account_id("") == ""
    with pytest.raises(SettingError, match="not a MID"):
        validate_sfmc_account_id("BU-1")


def test_known_options_are_accepted_and_typed():
    assert validate_destination_options(
        "sfmc_data_extension", {"requests_per_second": 5, "max_concurrency": 2.0}
    ) == {"requests_per_second": 5.0, "max_concurrency": 2}
    assert validate_destination_options("marketo", {"batch_size": 300}) == {"batch_size": 300}
    assert validate_destination_options("marketo", None) == {}


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("marketo", {"rowset_batch_size": 10}, "Unknown option 'rowset_batch_size'"),
        ("sfmc_contacts", {"calls_per_20s": 10}, "Unknown option 'calls_per_20s'"),
        ("marketo", {"batch_size": 301}, "between 1 and 300"),
        ("marketo", {"batch_size": "300"}, "must be a whole number"),
        ("marketo", {"max_concurrency": True}, "must be a whole number"),
        ("sfmc_data_extension", {"max_concurrency": 1.5}, "must be a whole number"),
        ("sfmc_data_extension", {"requests_per_second": 0}, "between 0.1 and 1000"),
        ("sfmc_data_extension", {"async_batch_size": 50000}, "between 1 and 32000"),
        ("sfmc_data_extension", ["max_concurrency"], "must be a JSON object"),
        # Each kind takes only what it reads, within the bounds it uses.
        ("sfmc_data_extension", {"rowset_batch_size": 51}, "between 1 and 50"),
        ("sfmc_contacts", {"async_threshold": 10}, "Unknown option 'async_threshold'"),
        ("sfmc_contacts", {"async_batch_size": 10}, "Unknown option 'async_batch_size'"),
        ("sfmc_contacts", {"rowset_batch_size": 201}, "between 1 and 200"),
        ("marketo", {"bulk_threshold": 0}, "between 1 and 100000000"),
        ("no_such_kind", {}, "Unknown destination kind 'no_such_kind'"),
    ],
)
def test_bad_options_are_refused_naming_the_option(kind, options, message):
    with pytest.raises(SettingError, match=message):
        validate_destination_options(kind, options)
