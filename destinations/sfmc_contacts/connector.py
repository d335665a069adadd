"""SFMC contacts connector (kind sfmc_contacts), after Adobe's "(API) SFMC" destination.

Each cohort is a text attribute in an attribute set (usually "Email Demographics"): while a
user is a member it holds member_value ("realized"), after leaving exited_value
("exited"). Contacts are updated one PATCH each, in parallel within max_concurrency.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from destinations.base import (
    ConnectionReport,
    Connector,
    DestinationConfig,
    FieldInfo,
    MembershipChange,
    PushOutcome,
    SendPlan,
    SyncTarget,
    TargetCheck,
    TargetStatus,
    UnitKind,
    target_checks,
)
from destinations.errors import (
    ConfigurationError,
    TargetValidationError,
    TransientError,
    error_retriable,
)
from destinations.http import RetryPolicy, TokenCache
from destinations.sfmc.client import SfmcClient
from destinations.sfmc.common import PLAIN_KEY, contact_key_normalize
from destinations.sfmc_contacts.spec import (
    DEFAULT_ATTRIBUTE_SET,
    DEFAULT_EXITED_VALUE,
    DEFAULT_MEMBER_VALUE,
    ContactsOptions,
)

DEFINITIONS_PAGE_SIZE = 50
# Past this many pages the attribute set list is not what we think it is.
MAX_DEFINITION_PAGES = 200
# Attribute types that cannot hold "realized" / "exited".
NON_TEXT_TYPES = frozenset({"boolean", "number", "decimal", "date", "datetime", "integer"})


class ContactsConnector(Connector):
    plain_identity = PLAIN_KEY

    def __init__(
        self,
        config: DestinationConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy | None = None,
        token_cache: TokenCache | None = None,
    ) -> None:
        self.config = config
        options = ContactsOptions.of(config.options)
        self.client = SfmcClient(config, options, sleep=sleep, retry=retry, token_cache=token_cache)
        self.attribute_set = config.setting("attribute_set") or DEFAULT_ATTRIBUTE_SET
        self._batch_size = options.rowset_batch_size

    @property
    def api_calls(self) -> int:
        return self.client.api_calls

    # --- schema --------------------------------------------------------------------------

    def _attribute_set_definition(self) -> dict[str, Any]:
        wanted = self.attribute_set.lower()
        seen: list[str] = []
        for page in range(1, MAX_DEFINITION_PAGES + 1):
            data = self.client.attribute_set_definitions(page=page, page_size=DEFINITIONS_PAGE_SIZE)
            items = data["items"]  # objects: the client checked the answer
            for item in items:
                name = _text(item.get("name"))
                seen.append(name)
                if name.lower() == wanted:
                    if "attributes" in item:
                        return item
                    return self.client.attribute_set_definition(str(item.get("id", "")))
            count, page_size = data.get("count"), data.get("pageSize")
            if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size < 1:
                page_size = DEFINITIONS_PAGE_SIZE
            if not items or (isinstance(count, int) and page * page_size >= count) or len(items) < page_size:
                break
        shown = ", ".join(f"'{n}'" for n in seen[:10]) + (" ..." if len(seen) > 10 else "")
        raise ConfigurationError(
            f"SFMC has no attribute set named '{self.attribute_set}' for this package. "
            f"Attribute sets found: {shown or 'none'}. Check the name in Contact Builder > "
            "Data Designer.", code="attribute_set_not_found",
        )

    def _attributes(self) -> dict[str, FieldInfo]:
        definition = self._attribute_set_definition()
        infos: dict[str, FieldInfo] = {}
        for attribute in definition.get("attributes") or []:
            name = _text(attribute.get("name")) or _text(attribute.get("key"))
            if not name:
                continue
            value_definition = attribute.get("valueDefinition") or {}
            kind = str(
                (value_definition.get("dataType") if isinstance(value_definition, dict) else "")
                or attribute.get("dataType") or attribute.get("storageLogicalType") or "Text"
            )
            infos[name.lower()] = FieldInfo(
                name=name, label=f"{name} ({kind})", type=kind,
                is_target_compatible=kind.lower() not in NON_TEXT_TYPES
                and not attribute.get("isReadOnly", False),
            )
        return infos

    def check_connection(self) -> ConnectionReport:
        fields = list(self._attributes().values())
        usable = sum(1 for f in fields if f.is_target_compatible)
        return ConnectionReport(
            ok=True,
            summary=f"Attribute set '{self.attribute_set}': {len(fields)} attributes, {usable} "
            "text attribute(s) available for cohorts.",
            fields=fields,
        )

    def list_target_fields(self) -> list[FieldInfo]:
        return list(self._attributes().values())

    def validate_target(self, target: SyncTarget) -> None:
        self._usable_attribute(self._attributes(), target)

    def check_targets(self, targets: Sequence[SyncTarget]) -> list[TargetCheck]:
        attributes = self._attributes()

        def describe(target: SyncTarget) -> TargetCheck:
            found = self._usable_attribute(attributes, target)
            return TargetCheck(
                TargetStatus.EXISTS, f"Attribute '{found.name}' of '{self.attribute_set}': {found.type}."
            )

        return target_checks(targets, describe)

    def _usable_attribute(self, attributes: Mapping[str, FieldInfo], target: SyncTarget) -> FieldInfo:
        attribute = target.field.strip()
        if not attribute:
            raise TargetValidationError("Enter the text attribute this sync writes to.", code="no_target")
        found = attributes.get(attribute.lower())
        if found is None:
            raise TargetValidationError(
                f"The attribute set '{self.attribute_set}' has no attribute '{attribute}'. "
                "Create it (type Text Area Long) in Contact Builder > Data Designer, then check "
                "the connection again.", code="target_missing",
            )
        if found.type.lower() in NON_TEXT_TYPES:
            raise TargetValidationError(
                f"The attribute '{found.name}' in '{self.attribute_set}' is {found.type}, but "
                f"membership is written as text ('{_member_value(target)}' / "
                f"'{_exited_value(target)}'): use a Text attribute.", code="target_wrong_type",
            )
        if not found.is_target_compatible:
            raise TargetValidationError(
                f"The attribute '{found.name}' in '{self.attribute_set}' is read-only.",
                code="target_read_only",
            )
        return found

    # --- pushing -------------------------------------------------------------------------

    def normalize_identity(self, raw_value: Any) -> str:
        return contact_key_normalize(raw_value)

    def send_plan(self, total_changes: int) -> SendPlan:
        """The same for every run: batches of rowset_batch_size contacts."""
        return SendPlan(UnitKind.BATCHES, batch_size=self._batch_size, concurrency=self.client.max_concurrency)

    def push(self, target: SyncTarget, changes: Sequence[MembershipChange]) -> list[PushOutcome]:
        if not changes:
            return []
        if len(changes) == 1:
            return [self._push_one(target, changes[0])]
        workers = min(self.client.max_concurrency, len(changes))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sfmc-contacts") as pool:
            return list(pool.map(lambda change: self._push_one(target, change), changes))

    def _push_one(self, target: SyncTarget, change: MembershipChange) -> PushOutcome:
        value = _member_value(target) if change.is_member else _exited_value(target)
        body = {
            "contactKey": change.identity,
            "attributeSets": [
                {"name": self.attribute_set, "items": [{"values": [{"name": target.field, "value": value}]}]}
            ],
        }
        try:
            status, data = self.client.contact_update(body)
        except TransientError as exc:
            # One contact that kept failing is that contact's failure; problems with the
            # whole account (auth, permissions) are permanent and still raised.
            return PushOutcome(identity=change.identity, ok=False, code=exc.code,
                               message=exc.message, retriable=error_retriable(exc))
        operation = str(data.get("operationStatus", "")).upper()
        if status < 400 and operation == "OK":
            return PushOutcome(identity=change.identity, ok=True)
        message = self.client.error_text(data) or f"SFMC did not update the contact (HTTP {status})."
        return PushOutcome(identity=change.identity, ok=False, code=_result_code(data, status), message=message)


def _text(value: Any) -> str:
    if isinstance(value, Mapping):
        value = value.get("value")
    return str(value).strip() if value is not None else ""


def _member_value(target: SyncTarget) -> str:
    return str(target.options.get("member_value") or DEFAULT_MEMBER_VALUE)


def _exited_value(target: SyncTarget) -> str:
    return str(target.options.get("exited_value") or DEFAULT_EXITED_VALUE)


def _result_code(data: Any, status: int) -> str:
    if isinstance(data, dict):
        for item in data.get("resultMessages") or []:
            if isinstance(item, dict) and item.get("resultCode"):
                return str(item["resultCode"])
        if data.get("errorcode") is not None:
            return str(data["errorcode"])
        if data.get("operationStatus"):
            return str(data["operationStatus"])
    return f"http_{status}"
