"""A destination kind is one description (its KindSpec): forms, admin, apply, options, the
sandbox page and seed_demo read it, and an unknown kind is an error everywhere."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from destinations.errors import ConfigurationError, EndpointNotAllowedError
from destinations.kinds import (
    all_fieldsets,
    kind_choices,
    kind_names,
    kind_spec,
    kind_specs,
    official_host_suffixes,
)
from destinations.kindspec import UnknownKindError
from destinations.models import Destination
from destinations.registry import connector_for
from destinations.sandbox.inspect import sandbox_state_fetch
from destinations.selectors import destination_is_sandbox
from destinations.url_policy import ensure_url_allowed
from destinations.validation import SettingError, validate_destination_options
from syncs.config_as_code import config_apply
from syncs.options import sync_option_problems
from tests.factories import DestinationFactory

pytestmark = pytest.mark.django_db


def test_every_registered_kind_describes_itself_completely():
    assert [spec.kind for spec in kind_specs()] == list(kind_names())
    for spec in kind_specs():
        assert spec.connector_class().__name__.endswith("Connector")
        model_fields = {f.name for f in Destination._meta.get_fields()}
        assert set(spec.setting_names) <= model_fields, spec.kind
        # Every setting is shown in one of the kind's fieldsets, and nothing else is.
        shown = {name for fieldset in spec.fieldsets for name in fieldset.fields}
        assert shown == set(spec.setting_names), spec.kind
        assert spec.default_interval_minutes > 0 and spec.default_identity.startswith("$")
        assert spec.official_hosts and all(host.startswith(".") for host in spec.official_hosts)
        assert spec.options.described()
        assert callable(spec.sandbox_tables())
    assert kind_choices() == [(spec.kind, spec.label) for spec in kind_specs()]


def test_sfmc_kinds_default_to_the_distinct_id_and_marketo_to_the_email():
    assert kind_spec("sfmc_data_extension").default_identity == "$distinct_id"
    assert kind_spec("sfmc_contacts").default_identity == "$distinct_id"
    assert kind_spec("marketo").default_identity == "$email"


@pytest.mark.parametrize("kind", ["nope", "", None, ["marketo"]])
def test_an_unknown_kind_is_never_taken_for_another(kind):
    with pytest.raises(UnknownKindError, match="Unknown destination kind"):
        kind_spec(kind)


def test_an_unknown_stored_kind_fails_where_it_is_used_instead_of_acting_as_another(admin_client):
    destination = DestinationFactory(marketo=True)
    Destination.objects.filter(pk=destination.pk).update(kind="mailchimp")
    destination.refresh_from_db()

    with pytest.raises(ConfigurationError, match="Unknown destination kind 'mailchimp'"):
        connector_for(destination)
    assert "Unknown destination kind 'mailchimp'" in sandbox_state_fetch(destination=destination).error
    with pytest.raises(SettingError, match="Unknown destination kind 'mailchimp'"):
        validate_destination_options("mailchimp", {})
    with pytest.raises(UnknownKindError):
        sync_option_problems({}, kind="mailchimp")
    assert not destination_is_sandbox(destination)
    # Staff can still open it (to delete it, or pick a kind this version knows).
    page = admin_client.get(reverse("admin:destinations_destination_change", args=[destination.pk]))
    assert page.status_code == 200


def test_apply_refuses_an_unknown_kind_naming_the_known_ones():
    report = config_apply(document={"destinations": [
        {"name": "X", "kind": "marketto", "client_id": "id", "client_secret": "s", "base_url": "https://a.mktorest.com"},
    ]}, environ={})

    assert report.errors == [
        f'destinations[0] "X": kind: must be one of {", ".join(kind_names())} (\'marketto\').'
    ]


def test_the_admin_form_refuses_an_unknown_kind(admin_client):
    response = admin_client.post(reverse("admin:destinations_destination_add"), {
        "name": "X", "kind": "marketto", "client_id": "id", "new_client_secret": "s", "options": "{}",
    })

    assert response.status_code == 200
    assert "kind" in response.context["adminform"].form.errors
    assert not Destination.objects.exists()


def test_the_change_form_shows_the_fieldsets_of_the_selected_kind_from_the_registry(admin_client):
    page = admin_client.get(reverse("admin:destinations_destination_add")).content.decode()

    groups = json.loads(re.search(
        r'<script id="kind-fieldset-classes" type="application/json">(.*?)</script>', page, re.DOTALL
    ).group(1))
    assert groups == {spec.kind: [f.css_class for f in spec.fieldsets] for spec in kind_specs()}
    for fieldset in all_fieldsets():
        assert fieldset.css_class in page
    # Fieldsets kinds share are shown once.
    assert page.count(all_fieldsets()[0].description) == 1


def test_official_hosts_come_from_the_kinds():
    assert set(official_host_suffixes()) == {h for spec in kind_specs() for h in spec.official_hosts}
    ensure_url_allowed("https://123-abc-456.mktorest.com/rest")
    with pytest.raises(EndpointNotAllowedError, match=re.escape("*.mktorest.com")):
        ensure_url_allowed("https://evil.example.com/")


def test_options_apply_only_where_a_kind_reads_them():
    assert sync_option_problems({"member_value": "in"}, kind="sfmc_data_extension") == [
        ("member_value", "applies only to SFMC contacts destinations; remove it.")]
    assert sync_option_problems({"property_mapping": {"plan": "Plan"}}, kind="marketo") == [
        ("property_mapping", "applies only to SFMC data extension destinations; remove it.")]
    assert sync_option_problems({"removal_guard_ratio": 0.2}, kind="marketo") == []
