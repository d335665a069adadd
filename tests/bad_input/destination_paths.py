"""Each client path set up against its emulator, for the bad-input suites of destination answers.

A `ClientPath` makes a destination and a sync that send their users through one path of
one client (SFMC rowset, SFMC async, SFMC contacts, Marketo sync, Marketo bulk import),
and reads back what the emulator holds. Connectors are the real ones, built from the
registry's class paths with a sleep that waits at most 10 ms (retry backoffs, status polls).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.cache import cache

from destinations.base import DestinationConfig
from destinations.kinds import kind_spec
from destinations.models import Destination
from destinations.registry import override_connector
from destinations.sandbox.server import SandboxServer
from syncs.models import Sync
from tests.factories import DestinationFactory, SyncFactory
from tests.syncs.fakes import pro_profile

SANDBOX_ID = "sandbox-client-id"
SANDBOX_SECRET = "sandbox-client-secret"
DE_KEY = "CohortSync_Demo"
ATTRIBUTE_SET = "Email Demographics"
USERS = 10


@dataclass(frozen=True)
class ClientPath:
    name: str
    kind: str
    field: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def is_marketo(self) -> bool:
        return self.kind == "marketo"

    def emulator(self, sandbox: SandboxServer) -> Any:
        return sandbox.sandboxes.marketo if self.is_marketo else sandbox.sandboxes.sfmc

    def destination(self, sandbox: SandboxServer, *, secret: str = SANDBOX_SECRET) -> Destination:
        common = {"client_id": SANDBOX_ID, "client_secret": secret}
        if self.is_marketo:
            return DestinationFactory(marketo=True, base_url=sandbox.marketo_base_url,
                                      options={"max_concurrency": 2, **self.options}, **common)
        options = {"requests_per_second": 1000, "max_concurrency": 2, **self.options}
        if self.kind == "sfmc_contacts":
            return DestinationFactory(contacts=True, auth_base_url=sandbox.sfmc_auth_base_url,
                                      attribute_set=ATTRIBUTE_SET, options=options, **common)
        return DestinationFactory(auth_base_url=sandbox.sfmc_auth_base_url, data_extension_key=DE_KEY,
                                  key_column="SubscriberKey", options=options, **common)

    def sync(self, sandbox: SandboxServer, *, users: int = USERS, secret: str = SANDBOX_SECRET,
             target_field: str | None = None) -> tuple[Sync, list[str]]:
        """A sync of `users` members (emails, which are their identities) on this path."""
        emails = [f"user{n}@example.com" for n in range(users)]
        for email in emails:
            pro_profile(email)
        sync = SyncFactory(destination=self.destination(sandbox, secret=secret),
                           target_field=target_field or self.field)
        return sync, emails

    def reject(self, sandbox: SandboxServer, identities: list[str], message: str) -> None:
        """The emulator refuses these users (per-user reasons) until clear_rejections()."""
        if self.is_marketo:
            sandbox.sandboxes.marketo.configure(
                reject_emails={i: {"code": "1003", "message": message} for i in identities})
        else:
            sandbox.sandboxes.sfmc.configure(reject_identities=dict.fromkeys(identities, message))

    def clear_rejections(self, sandbox: SandboxServer) -> None:
        if self.is_marketo:
            sandbox.sandboxes.marketo.configure(reject_emails={})
        else:
            sandbox.sandboxes.sfmc.configure(reject_identities={})

    def written(self, sandbox: SandboxServer, *, field: str | None = None) -> dict[str, Any]:
        """identity -> what the emulator holds in `field` (the path's by default)."""
        field = field or self.field
        if self.is_marketo:
            leads = sandbox.sandboxes.marketo.state()["leads"]
            return {lead["email"]: lead[field] for lead in leads if field in lead}
        sfmc = sandbox.sandboxes.sfmc
        if self.kind == "sfmc_contacts":
            return {key: sets[ATTRIBUTE_SET][field] for key, sets in sfmc.state()["contacts"].items()
                    if field in sets.get(ATTRIBUTE_SET, {})}
        return {row["SubscriberKey"]: row[field] for row in sfmc.rows(DE_KEY) if field in row}

    def member_value(self) -> Any:
        return "realized" if self.kind == "sfmc_contacts" else True


ROWSET = ClientPath("sfmc_rowset", "sfmc_data_extension", "In_Demo_Cohort")
ASYNC = ClientPath("sfmc_async", "sfmc_data_extension", "In_Demo_Cohort", {"async_threshold": 0})
CONTACTS = ClientPath("sfmc_contacts", "sfmc_contacts", "Cohort_Demo")
MARKETO_SYNC = ClientPath("marketo_sync", "marketo", "cohortProUsers")
MARKETO_BULK = ClientPath("marketo_bulk", "marketo", "cohortProUsers", {"bulk_threshold": 5})
PATHS = {path.name: path for path in (ROWSET, ASYNC, CONTACTS, MARKETO_SYNC, MARKETO_BULK)}


def _fast_sleep(seconds: float) -> None:
    time.sleep(min(seconds, 0.01))


def _build(config: DestinationConfig) -> Any:
    return kind_spec(config.kind).connector_class()(config, sleep=_fast_sleep)


@pytest.fixture
def fast_connectors() -> Iterator[None]:
    """Real connectors whose waits last at most 10 ms, and no token left from another test."""
    cache.clear()
    with override_connector(_build):
        yield
