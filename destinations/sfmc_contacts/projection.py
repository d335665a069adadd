"""The API calls a run of the `sfmc_contacts` kind makes (KindSpec.project_calls), counted as
ContactsConnector sends them: one PATCH per user who joined or left."""

from __future__ import annotations

from destinations.kindspec import CallCount, CallProjection, PlannedSend


def project_calls(send: PlannedSend) -> CallProjection:
    parts = [CallCount.at_least(
        "to find the attribute set (one page of attribute sets; more when it is further down "
        "the list or listed without its attributes)", 1,
    )]
    if send.total:
        parts.append(CallCount.exactly("for contact updates (one per user who joined or left)", send.total))
    return CallProjection(tuple(parts))
