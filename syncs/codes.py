"""The codes runs and failure rows store that are CohortSync's own (not a destination's).

Stored, shown in the admin, sent in alerts and printed by `run_sync --json`: public values,
never renamed. Codes of destination errors are in destinations.errors (and the connectors
pass the destinations' own codes through).
"""

from __future__ import annotations

# --- Run codes (SyncRun.error_code) ------------------------------------------------------------
# The cohort's rules could not be evaluated; an SQL cohort could not be read from its source.
INVALID_RULES = "invalid_rules"
COHORT_REFRESH_FAILED = "cohort_refresh_failed"
# Every member was skipped: nothing identifies any of them in the destination.
NO_IDENTITIES = "no_identities"
# The run would remove too many acknowledged members: it waits for approval.
REMOVAL_GUARD = "removal_guard"
# Staff cancelled the run; staff rejected a run awaiting approval.
CANCELLED = "cancelled"
REJECTED = "rejected"
# A scheduled tick found the previous run still active.
PREVIOUS_RUN_ACTIVE = "previous_run_active"
# The worker running it stopped beating; a queued run no worker took.
WORKER_LOST = "worker_lost"
NOT_PICKED_UP = "not_picked_up"
# A bug: see the worker log.
INTERNAL_ERROR = "internal_error"

# --- Failure codes (SyncFailure.code) -----------------------------------------------------------
# Skipped members: no identity property, or a value the destination cannot take.
MISSING_IDENTITY = "missing_identity"
INVALID_IDENTITY = "invalid_identity"
# The destination answered without a result for this user.
NO_OUTCOME = "no_outcome"
# The destination refused this user without a code of its own.
REFUSED_WITHOUT_CODE = "rejected"
