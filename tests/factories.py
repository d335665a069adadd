"""factory-boy factories shared by every test package."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from alerts.models import AlertEvent, AlertRule
from cohorts.models import Cohort, Profile, StaticMembership
from destinations.models import Destination
from sources.models import ProfileImport, Source, SourceKind
from syncs.models import Sync, SyncedMember, SyncFailure, SyncRun


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    password = factory.django.Password("pw-for-tests")


class ProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Profile

    distinct_id = factory.Sequence(lambda n: f"user-{n:06d}")
    properties = factory.LazyAttribute(
        lambda p: {"$email": f"{p.distinct_id}@example.com", "plan": "free", "country": "US"}
    )


class CohortFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cohort

    name = factory.Sequence(lambda n: f"Cohort {n}")
    kind = Cohort.Kind.RULES
    rules = factory.LazyFunction(lambda: {"all": [{"property": "plan", "op": "eq", "value": "pro"}]})


class StaticCohortFactory(CohortFactory):
    kind = Cohort.Kind.STATIC
    rules = None


class StaticMembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StaticMembership

    cohort = factory.SubFactory(StaticCohortFactory)
    distinct_id = factory.Sequence(lambda n: f"user-{n:06d}")


class DestinationFactory(factory.django.DjangoModelFactory):
    """An SFMC data extension destination; use the traits for the other kinds."""

    class Meta:
        model = Destination

    name = factory.Sequence(lambda n: f"Destination {n}")
    kind = "sfmc_data_extension"
    subdomain = "mc-test-tenant"
    client_id = "client-id"
    client_secret = "s3cret-value"
    data_extension_key = "COHORTS_DE"
    key_column = "SubscriberKey"

    class Params:
        contacts = factory.Trait(
            kind="sfmc_contacts",
            data_extension_key="",
            key_column="",
            attribute_set="Email Demographics",
        )
        marketo = factory.Trait(
            kind="marketo",
            subdomain="",
            data_extension_key="",
            key_column="",
            base_url="https://123-ABC-456.mktorest.com",
        )
        static_list = factory.Trait(
            kind="marketo_static_list",
            subdomain="",
            data_extension_key="",
            key_column="",
            base_url="https://123-ABC-456.mktorest.com",
        )


class SyncFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Sync

    name = factory.Sequence(lambda n: f"Sync {n}")
    cohort = factory.SubFactory(CohortFactory)
    destination = factory.SubFactory(DestinationFactory)
    target_field = factory.Sequence(lambda n: f"Cohort_{n}")
    identity_property = "$email"
    mode = Sync.Mode.DYNAMIC


class SyncRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SyncRun

    sync = factory.SubFactory(SyncFactory)
    trigger = SyncRun.Trigger.MANUAL


class SyncFailureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SyncFailure

    run = factory.SubFactory(SyncRunFactory)
    identity_value = factory.Sequence(lambda n: f"user-{n:06d}@example.com")
    operation = SyncFailure.Operation.ADD
    code = "1003"
    message = "Value for field is invalid"


class SyncedMemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SyncedMember

    sync = factory.SubFactory(SyncFactory)
    identity_value = factory.Sequence(lambda n: f"user-{n:06d}@example.com")
    is_member = True
    acknowledged_at = factory.Faker("date_time", tzinfo=__import__("datetime").timezone.utc)


class AlertRuleFactory(factory.django.DjangoModelFactory):
    """A webhook rule on every event for every sync; `email=True` for an email rule."""

    class Meta:
        model = AlertRule

    name = factory.Sequence(lambda n: f"Alert rule {n}")
    channel = AlertRule.Channel.WEBHOOK
    events = factory.LazyFunction(lambda: list(AlertEvent.values))
    webhook_url = "https://hooks.example.com/services/T000/B000/factory-secret"
    webhook_format = AlertRule.WebhookFormat.JSON

    class Params:
        email = factory.Trait(channel=AlertRule.Channel.EMAIL, webhook_url="", email_to=["ops@example.com"])


class SourceFactory(factory.django.DjangoModelFactory):
    """A SQLite source by default; tests point `url` at a real application database."""

    class Meta:
        model = Source

    name = factory.Sequence(lambda n: f"Source {n}")
    kind = SourceKind.SQLITE
    url = "sqlite:////tmp/cohortsync-missing.sqlite3"
    options = factory.LazyFunction(dict)


class ProfileImportFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProfileImport

    name = factory.Sequence(lambda n: f"Import {n}")
    source = factory.SubFactory(SourceFactory)
    sql = "SELECT id AS distinct_id, email AS \"$email\", plan FROM users"


class SqlCohortFactory(CohortFactory):
    kind = Cohort.Kind.SQL
    rules = None
    source = factory.SubFactory(SourceFactory)
    sql = "SELECT id AS distinct_id FROM users WHERE plan = 'pro'"
