"""Marketo's error codes turned into sentences a growth engineer can act on.

Codes and their meaning follow Adobe's "Error Codes" page; the advice is ours. Nothing here
ever includes a credential or a token.
"""

from __future__ import annotations

# Envelope codes the client retries on its own (after a backoff).
TRANSIENT_CODES = frozenset({"604", "608", "611", "614", "713", "719", "1019", "1022", "1014"})
# Envelope codes that mean the access token is not (or no longer) valid: refresh once.
TOKEN_CODES = frozenset({"600", "601", "602"})
RATE_CODES = frozenset({"606", "615"})
QUOTA_CODE = "607"
IMPORT_QUEUE_FULL_CODE = "1016"

# Envelope codes that are a configuration problem on the Marketo side.
_ENVELOPE_ADVICE: dict[str, str] = {
    "603": "Marketo denied access (603). Give the API-only user's role the 'Read-Write Lead' "
    "permission in Admin > Users & Roles (and check the IP allowlist in Admin > Web Services).",
    "605": "Marketo refused the HTTP method (605). This is a CohortSync bug; please report it.",
    "609": "Marketo could not read the request body as JSON (609). This is a CohortSync bug; "
    "please report it.",
    "610": "Marketo says the API resource does not exist (610). Check that the base URL is the "
    "REST endpoint shown in Admin > Web Services (without /rest).",
    "612": "Marketo refused the content type (612). This is a CohortSync bug; please report it.",
    "613": "Marketo could not read the bulk import upload (613). This is a CohortSync bug; "
    "please report it.",
    "616": "This Marketo subscription type does not allow API access (616). Ask Adobe support "
    "to enable the REST API for it.",
    "1003": "Marketo rejected the request as invalid data (1003).",
    "1006": "Marketo does not know one of the fields sent (1006). Check that the sync's field "
    "still exists in Admin > Field Management.",
    "1029": "Marketo's bulk job queue is full or its daily export quota is used up (1029). "
    "Try again later.",
}

# Record-level reason codes (result[i].reasons / bulk failure rows) with the advice we add.
_RECORD_ADVICE: dict[str, str] = {
    "1001": "Marketo refused the value sent for this lead (1001 invalid value).",
    "1002": "Marketo says a required value is missing for this lead (1002).",
    "1003": "Marketo refused this lead's data (1003 invalid data), for example an email "
    "address it does not accept.",
    "1004": "Marketo found no lead to update (1004).",
    "1005": "Marketo already has this lead and refused to create it (1005).",
    "1006": "Marketo does not know the sync's field (1006): check it still exists in Admin > "
    "Field Management.",
    "1007": "Marketo has more than one lead with this email, so it updated none (1007). Merge "
    "the duplicate leads in Marketo, then retry this user.",
    "1008": "The API user may not write to this lead's workspace partition (1008). Give its "
    "role access to the partition in Admin > Users & Roles.",
    "1009": "Marketo needs a partition for this lead (1009); give the API user access to the "
    "Default partition.",
    "1010": "Marketo does not allow moving this lead to another partition (1010).",
    "1011": "Marketo does not support email as the lookup field here (1011).",
    "1013": "Marketo could not find the lead it expected (1013).",
}
# Record reasons worth retrying as they are (temporary conditions on Marketo's side).
RETRIABLE_RECORD_CODES = frozenset({"604", "608", "611", "713", "719", "1014", "1019", "1022", "1029"})


def envelope_message(code: str, marketo_message: str) -> str:
    advice = _ENVELOPE_ADVICE.get(code)
    said = f' Marketo said: "{marketo_message}".' if marketo_message else ""
    if advice:
        return f"{advice}{said}"
    return f"Marketo rejected the request with code {code}.{said}"


def record_message(code: str, marketo_message: str) -> str:
    advice = _RECORD_ADVICE.get(code)
    said = f' Marketo said: "{marketo_message}".' if marketo_message else ""
    if advice:
        return f"{advice}{said}"
    if code:
        return f"Marketo skipped this lead with reason {code}.{said}"
    return f"Marketo skipped this lead without giving a reason.{said}"


def record_is_retriable(code: str) -> bool:
    return code in RETRIABLE_RECORD_CODES


IDENTITY_ADVICE = (
    "Check the Client ID and Client Secret in Admin > LaunchPoint > your API service > View "
    "Details, and that the base URL is your instance's REST endpoint."
)
