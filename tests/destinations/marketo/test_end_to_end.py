"""A run the way the engine drives it: validate, normalise, batch, push in parallel."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from destinations.base import MembershipChange
from destinations.errors import InvalidIdentityError

from .conftest import target


def test_700_changes_with_a_few_rejected_emails_end_up_as_the_right_booleans(connector, marketo):
    rejected = {f"user{i}@example.com" for i in (3, 350, 599)}
    marketo.configure(
        reject_emails={e: {"code": "1003", "message": "Email address is blocklisted"} for e in rejected},
        # Existing leads: 100 current members who are leaving, with mixed-case emails.
        leads=[{"email": f"Leaver{i}@Example.com", "cohortChurnRisk": True} for i in range(100)],
    )
    sync_target = target("Churn Risk Cohort")
    raw = [(f"  User{i}@Example.com", True) for i in range(600)] + \
          [(f"leaver{i}@example.com", False) for i in range(100)] + [("not an email", True)]

    field = connector.validate_target(sync_target)
    changes, local_failures = [], []
    for value, is_member in raw:
        try:
            changes.append(MembershipChange(connector.normalize_identity(value), is_member))
        except InvalidIdentityError as exc:
            local_failures.append(exc.message)
    plan = connector.send_plan(len(changes))
    size = plan.batch_size
    batches = [changes[i:i + size] for i in range(0, len(changes), size)]
    with ThreadPoolExecutor(plan.concurrency) as pool:
        outcomes = [o for result in pool.map(lambda b: connector.push(sync_target, b), batches) for o in result]

    assert field == "cohortChurnRisk" and size == 300 and len(changes) == 700
    assert local_failures == ["Not sent to Marketo: the email address contains spaces or characters such as "
                              "<>,;: that addresses cannot have."]
    failed = {o.identity: o for o in outcomes if not o.ok}
    assert set(failed) == rejected
    assert all(o.code == "1003" and "blocklisted" in o.message for o in failed.values())
    state = marketo.state()
    assert state["lead_count"] == 100 + 600 - 3
    leads = {lead["email"].lower(): lead for lead in state["leads"]}
    assert all(leads[f"user{i}@example.com"]["cohortChurnRisk"] is True
               for i in range(600) if f"user{i}@example.com" not in rejected)
    assert all(leads[f"leaver{i}@example.com"]["cohortChurnRisk"] is False for i in range(100))
    assert not rejected & set(leads)
    calls = state["calls"]
    assert calls["by_endpoint"]["POST /rest/v1/leads.json"] == 3
    assert calls["tokens_issued"] == 1 and calls["token_in_query"] == 0
    assert connector.api_calls == 1 + 1 + 3  # token, describe, three sync calls
