"""Idempotent demo data: profiles, cohorts, sandbox destinations, syncs and an admin user."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from cohorts.models import Profile
from destinations.kinds import kind_spec
from sources.demo import application_database_ensure
from syncs.config_as_code import config_apply

DEMO_CONFIG = Path(settings.BASE_DIR) / "docs" / "examples" / "demo.json"
SECRET_VARIABLE = "COHORTSYNC_DEMO_CLIENT_SECRET"
SANDBOX_CLIENT_SECRET = "sandbox-client-secret"
ADMIN_USERNAME = "admin"
DISTINCT_ID_FORMAT = "demo-{:05d}"

_FIRST = ["ana", "ben", "chloe", "dev", "eva", "femi", "gus", "hana", "ivan", "jun", "kemi", "li"]
_LAST = ["ng", "okafor", "silva", "smith", "tanaka", "novak", "haddad", "kowalski", "reyes"]
_COUNTRIES = ["US", "US", "US", "GB", "DE", "FR", "BR", "IN", "JP", "NG", "CA", "AU"]
_PLANS = ["free"] * 12 + ["pro"] * 5 + ["team"] * 2 + ["enterprise"]
# Identities a destination rejects, so the run pages have failures to show.
_ODD_EMAILS = [
    "not-an-email",
    "ana@@example.com",
    "ben@example",
    "chloe smith@example.com",
    "@example.com",
]


def demo_profile(index: int, *, today: dt.date) -> tuple[str, dict[str, Any]]:
    """The same profile for the same index on the same day: a seeded RNG per profile."""
    rng = random.Random(index)
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    recent = rng.random() < 0.1
    signup = today - dt.timedelta(days=rng.randint(0, 30) if recent else rng.randint(0, 720))
    roll = rng.random()
    if roll < 0.6:
        inactive_days = rng.randint(0, 6)
    elif roll < 0.85:
        inactive_days = rng.randint(7, 29)
    else:
        inactive_days = rng.randint(30, 120)
    last_seen_day = max(signup, today - dt.timedelta(days=inactive_days))
    last_seen = dt.datetime.combine(last_seen_day, dt.time(rng.randint(0, 23), rng.randint(0, 59)))
    properties: dict[str, Any] = {
        "$name": f"{first.title()} {last.title()}",
        "$email": f"{first}.{last}.{index}@example.com",
        "plan": rng.choice(_PLANS),
        "country": rng.choice(_COUNTRIES),
        "signup_date": signup.isoformat(),
        "last_seen": last_seen.isoformat() + "Z",
    }
    unusable = False
    if index % 97 == 13:
        del properties["$email"]
        unusable = index % 2 == 1
    elif index % 89 == 7:
        properties["$email"] = _ODD_EMAILS[(index // 89) % len(_ODD_EMAILS)]
        unusable = (index // 89) % 2 == 0
    if unusable:
        # Recent non-US signups, so "Recent signups → Marketo" shows per-user rows.
        properties["signup_date"] = (today - dt.timedelta(days=index % 10)).isoformat()
        properties["country"] = "BR"
    return DISTINCT_ID_FORMAT.format(index), properties


def _profiles(count: int, today: dt.date) -> Iterator[Profile]:
    for distinct_id, properties in _users(count, today):
        yield Profile(distinct_id=distinct_id, properties=properties)


def demo_document(sandbox_url: str, app_database: Path | None = None) -> dict[str, Any]:
    """docs/examples/demo.json with its destinations pointed at `sandbox_url` (each kind's
    spec says which setting holds its emulator's URL) and its source at the demo
    application database."""
    document = json.loads(DEMO_CONFIG.read_text(encoding="utf-8"))
    path = Path(app_database or settings.COHORTSYNC_DEMO_APP_DB).resolve()
    for source in document.get("sources", []):
        source["url"] = f"sqlite:///{path}"
    base = sandbox_url.rstrip("/")
    for destination in document["destinations"]:
        sandbox = kind_spec(destination["kind"]).sandbox
        destination[sandbox.url_setting] = f"{base}{sandbox.url_suffix}"
    return document


class Command(BaseCommand):
    help = (
        "Load demo data: profiles, cohorts, one destination of each kind pointing at the "
        "sandbox emulators, a sync for each, a SQLite application database with a scheduled "
        "import and an SQL cohort, and an 'admin' superuser with a new password. "
        "Safe to run again: nothing is duplicated."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        default_url = (
            f"http://{settings.COHORTSYNC_SANDBOX_HOST}:{settings.COHORTSYNC_SANDBOX_PORT}"
        )
        parser.add_argument(
            "--sandbox-url",
            default=default_url,
            help=f"Where `manage.py run_sandbox` listens (default {default_url}).",
        )
        parser.add_argument("--profiles", type=int, default=3000, help="Number of demo profiles.")
        parser.add_argument(
            "--web-url",
            default="http://127.0.0.1:8000",
            help="Where the web server listens, for the printed next steps.",
        )

    def handle(self, *args, sandbox_url: str, profiles: int, web_url: str, **options) -> None:  # type: ignore[no-untyped-def]
        if profiles < 0 or profiles > 1_000_000:
            raise CommandError("--profiles must be between 0 and 1000000.")
        environ = dict(os.environ)
        environ.setdefault(SECRET_VARIABLE, SANDBOX_CLIENT_SECRET)
        today = timezone.now().astimezone(dt.UTC).date()
        with transaction.atomic():
            Profile.objects.bulk_create(
                _profiles(profiles, today),
                batch_size=1000,
                update_conflicts=True,
                unique_fields=["distinct_id"],
                update_fields=["properties"],
            )
            app_database = Path(settings.COHORTSYNC_DEMO_APP_DB).resolve()
            application_database_ensure(path=app_database, users=_users(profiles, today))
            # The sandbox is not running yet (`make demo` starts it afterwards): the targets
            # the demo names exist in it by construction.
            report = config_apply(document=demo_document(sandbox_url, app_database), environ=environ,
                                  check_targets=False)
            if not report.ok:
                transaction.set_rollback(True)
                raise CommandError(
                    "The demo configuration was not applied:\n  "
                    + "\n  ".join(report.errors)
                    + "\nIf the sandbox URL is refused, add its host:port to "
                    "COHORTSYNC_ALLOWED_API_HOSTS (`make demo` writes it to .env)."
                )
            _application_feeds_start(app_database)
            password = _reset_admin()

        self.stdout.write(f"{profiles} demo profiles ({DISTINCT_ID_FORMAT.format(0)} ...).")
        for line in report.lines():
            self.stdout.write(f"  {line}")
        web = web_url.rstrip("/")
        self.stdout.write(
            self.style.SUCCESS(
                f"\nAdmin: {web}/admin/\n  user:     {ADMIN_USERNAME}\n  password: {password}\n"
            )
        )
        self.stdout.write(
            "Next:\n"
            f"  1. Log in and open Syncs: {web}/admin/syncs/sync/\n"
            "  2. Select a sync and run \"Export now\" (or \"Dry run\" to preview the plan).\n"
            "  3. Open the run: counts, and each user skipped or failed (missing or invalid emails).\n"
            f"  4. See what the emulators received: {sandbox_url.rstrip('/')}/sfmc/_sandbox/state "
            f"and {sandbox_url.rstrip('/')}/marketo/_sandbox/state\n"
            "  5. Nobody uploads anything: the demo application database changes every minute, "
            "the import \"Application users\" reads it (Sources and scheduled imports > Import "
            "runs) and the dynamic syncs follow.\n"
            "  Or from the shell: manage.py run_sync \"Pro users → SFMC data extension\" "
            "--inline --json"
        )


def _users(count: int, today: dt.date) -> Iterator[tuple[str, dict[str, Any]]]:
    for index in range(count):
        yield demo_profile(index, today=today)


def _application_feeds_start(app_database: Path) -> None:
    """The demo's application database keeps changing (a demo-only schedule), its import
    reads it every minute from scratch after a re-seed, and its SQL cohort is read now so
    the admin shows members at once."""
    from cohorts.models import Cohort
    from sources.demo import application_tick_schedule
    from sources.models import ProfileImport
    from sources.services import cohort_refresh

    # Profiles were just reset to the seeded values: the next import run reads every row.
    ProfileImport.objects.filter(source__url=f"sqlite:///{app_database}").update(high_water_mark=None)
    for cohort in Cohort.objects.filter(kind=Cohort.Kind.SQL, source__url=f"sqlite:///{app_database}"):
        cohort_refresh(cohort=cohort)
    application_tick_schedule(path=app_database)


def _reset_admin() -> str:
    """Create the 'admin' superuser or reset its password; returns the new password."""
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(
        username=ADMIN_USERNAME, defaults={"email": "admin@example.com"}
    )
    password = secrets.token_urlsafe(12)
    user.set_password(password)
    user.is_staff = user.is_superuser = user.is_active = True
    user.save()
    return password
