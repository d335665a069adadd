"""What the sync form shows beyond its fields: the settings its script needs, and what the
destination said about the target field when the sync was saved. Read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.urls import reverse

from destinations.base import TargetCheck, TargetStatus
from destinations.kinds import kind_spec
from destinations.models import Destination
from syncs.models import Sync


def sync_form_config(sync: Sync | None) -> dict[str, Any]:
    """Settings for the sync form's script (static/syncs/sync_form.js), as JSON."""
    destinations = Destination.objects.defer("client_secret").only("pk", "kind")
    return {
        "targetFieldsUrl": reverse("admin:syncs_sync_target_fields"),
        "coverageUrl": reverse("admin:syncs_sync_identity_coverage"),
        # A frozen sync has no destination or identity input: the script reads these.
        "destinationId": sync.destination_id if sync is not None and sync.pk else None,
        "identityProperty": sync.identity_property if sync is not None and sync.pk else "",
        "destinations": {
            str(destination.pk): {
                "defaultInterval": destination.default_interval_minutes,
                # A new sync left without an identity property takes this one.
                "defaultIdentity": kind_spec(destination.kind).default_identity,
                # What the script says when the typed field is not among the destination's
                # fields (the save then asks the destination itself).
                "missingField": kind_spec(destination.kind).missing_target_hint,
            }
            for destination in destinations
        },
    }


def target_check_message(check: TargetCheck) -> tuple[str, int]:
    """The message shown after saving a sync whose target field was checked."""
    if check.status == TargetStatus.EXISTS:
        return f"Target field checked with the destination. {check.message}", messages.INFO
    if check.status == TargetStatus.WILL_BE_CREATED:
        return check.message, messages.INFO
    return (
        f"Saved without checking the target field. {check.message} The first run checks it "
        "again before sending anything.",
        messages.WARNING,
    )
