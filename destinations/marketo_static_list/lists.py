"""Marketo's static list endpoints, called through the shared MarketoClient (its transport,
limits, token handling and envelope errors): find a list, add and remove leads, and the
lead ids of emails.

Lead ids by email go in the URL (GET leads.json?filterType=email&filterValues=...): the
emails are cut into lookups of at most 300 whose whole URL stays under 8 KB, beyond which
Marketo answers HTTP 414.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlencode

from destinations.marketo.client import MarketoClient

LIST_PAGE_SIZE = 300
# Stop listing after this many pages: an instance with more lists is read by name instead.
MAX_LIST_PAGES = 50
MAX_IDS_PER_CALL = 300
MAX_EMAILS_PER_LOOKUP = 300
# The whole URL of a lookup stays under Marketo's 8 KB (8,192 bytes), with room left for the
# request line around it.
MAX_LOOKUP_URL_BYTES = 8_000
# A comma between emails, as it is encoded in the URL.
SEPARATOR = quote_plus(",")
NOT_CHANGED = (
    "These leads are not acknowledged and are sent again by the next run. If this keeps "
    "happening, check the base URL: something other than Marketo's REST API (a proxy?) answers."
)


@dataclass(frozen=True)
class StaticList:
    id: int
    name: str


def _lists_read(client: MarketoClient, params: dict[str, Any], purpose: str) -> Iterator[StaticList]:
    token = ""
    for _ in range(MAX_LIST_PAGES):
        response = client.call("GET", "/rest/v1/lists.json", params={
            **params, "batchSize": LIST_PAGE_SIZE, **({"nextPageToken": token} if token else {}),
        })
        answer, result = client.result(response, purpose)
        for item in answer.objects(result, "result"):
            list_id, name = item.get("id"), item.get("name")
            if isinstance(list_id, bool) or not isinstance(list_id, int) or not isinstance(name, str):
                raise answer.unexpected("a list without its number 'id' and text 'name'")
            yield StaticList(id=list_id, name=client.scrub(name))
        token = str(answer.object().get("nextPageToken") or "")
        if not token or not result:
            return


def list_find(client: MarketoClient, *, name: str = "", list_id: int | None = None) -> StaticList | None:
    """The static list with exactly this name (case included) or this id, or None."""
    if list_id is not None:
        found = [s for s in _lists_read(client, {"id": list_id}, f"find static list {list_id}") if s.id == list_id]
    else:
        # Marketo's name filter may match more loosely than CohortSync does (case, or a name
        # with commas read as several): only an exact match counts.
        found = [s for s in _lists_read(client, {"name": name}, "find a static list by name") if s.name == name]
    return found[0] if found else None


def lists_all(client: MarketoClient) -> list[StaticList]:
    """The instance's static lists (the first MAX_LIST_PAGES pages of them)."""
    return list(_lists_read(client, {}, "list the static lists"))


def list_leads_change(
    client: MarketoClient, *, list_id: int, lead_ids: Sequence[int], add: bool
) -> dict[int, dict[str, Any]]:
    """Add leads to (or remove them from) a static list, MAX_IDS_PER_CALL per call; returns
    lead id -> its result ({"status": "added" | "removed" | "skipped", "reasons": [...]})."""
    results: dict[int, dict[str, Any]] = {}
    verb = "add leads to" if add else "remove leads from"
    for start in range(0, len(lead_ids), MAX_IDS_PER_CALL):
        chunk = list(lead_ids[start:start + MAX_IDS_PER_CALL])
        response = client.call("POST" if add else "DELETE", f"/rest/v1/lists/{int(list_id)}/leads.json",
                               json={"input": [{"id": lead_id} for lead_id in chunk]})
        answer, result = client.result(response, f"{verb} static list {int(list_id)}", advice=NOT_CHANGED)
        by_id = {}
        for item in answer.objects(result, "result"):
            lead_id = item.get("id")
            if isinstance(lead_id, bool) or not isinstance(lead_id, int):
                raise answer.unexpected("a result without the lead's number 'id'")
            by_id[lead_id] = client.record_scrubbed(item)
        if set(by_id) != set(chunk):
            # Results are matched to leads by id: another set of ids cannot be trusted.
            raise answer.unexpected(f"results for {len(by_id)} leads that are not the {len(set(chunk))} sent")
        results.update(by_id)
    return results


def lead_ids_by_email(client: MarketoClient, emails: Sequence[str]) -> dict[str, list[int]]:
    """email (lower-cased) -> the ids of the leads with that email; emails without a lead are
    absent."""
    found: dict[str, list[int]] = {}
    for path in lookup_paths(client.base_url, emails):
        token = ""
        while True:
            response = client.call("GET", f"{path}&nextPageToken={token}" if token else path)
            answer, result = client.result(response, "look leads up by email", advice=NOT_CHANGED)
            for lead in answer.objects(result, "result"):
                lead_id, email = lead.get("id"), lead.get("email")
                if isinstance(lead_id, bool) or not isinstance(lead_id, int) or not isinstance(email, str):
                    raise answer.unexpected("a lead without its number 'id' and text 'email'")
                found.setdefault(email.strip().lower(), []).append(lead_id)
            token = str(answer.object().get("nextPageToken") or "")
            if not token or not result:
                break
    return found


def lookup_paths(base_url: str, emails: Sequence[str]) -> Iterator[str]:
    """Paths (with their query) of lookups of at most MAX_EMAILS_PER_LOOKUP emails each,
    each whole URL (base_url + path) at most MAX_LOOKUP_URL_BYTES long."""

    def path_of(chunk: list[str]) -> str:
        query = urlencode({"filterType": "email", "filterValues": ",".join(chunk), "fields": "id,email"})
        return f"/rest/v1/leads.json?{query}"

    # The URL's length, kept as emails are added: the joined values are encoded one
    # character at a time, so each email adds its own encoded length and a comma ("%2C").
    empty = len(base_url) + len(path_of([]))
    chunk: list[str] = []
    size = empty
    for email in emails:
        added = len(quote_plus(email)) + (len(SEPARATOR) if chunk else 0)
        if chunk and (len(chunk) >= MAX_EMAILS_PER_LOOKUP or size + added > MAX_LOOKUP_URL_BYTES):
            yield path_of(chunk)
            chunk, size, added = [], empty, len(quote_plus(email))
        chunk.append(email)
        size += added
    if chunk:
        yield path_of(chunk)


def email_of_ids(ids_by_email: Mapping[str, list[int]]) -> dict[int, str]:
    return {lead_id: email for email, ids in ids_by_email.items() for lead_id in ids}
