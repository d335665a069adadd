"""Sync.options: the keys a sync understands, where they apply, and what values they take.

Shared by the admin form and `manage.py apply`, so both accept and reject the same options
with the same words.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from destinations.models import DestinationKind

# Options that mean something only for some destination kinds: elsewhere they would be
# silently ignored, which reads like a bug when the export does not do what was asked.
SYNC_OPTION_KINDS: dict[str, frozenset[str]] = {
    "create_missing_field": frozenset({DestinationKind.SFMC_DATA_EXTENSION}),
    "property_mapping": frozenset({DestinationKind.SFMC_DATA_EXTENSION}),
    "member_value": frozenset({DestinationKind.SFMC_CONTACTS}),
    "exited_value": frozenset({DestinationKind.SFMC_CONTACTS}),
    "removal_guard_ratio": frozenset(DestinationKind.values),
}
# Options that only mean something when a run may send "not a member": a one-time export
# never does (it writes today's members and clears no one).
DYNAMIC_ONLY_OPTIONS = frozenset({"exited_value", "removal_guard_ratio"})
DYNAMIC_MODE = "dynamic"
KIND_LABELS = {
    DestinationKind.SFMC_DATA_EXTENSION: "SFMC data extension",
    DestinationKind.SFMC_CONTACTS: "SFMC contacts",
    DestinationKind.MARKETO: "Marketo",
}


def sync_option_problems(
    options: Any, *, kind: str | None, mode: str | None = None
) -> list[tuple[str, str]]:
    """(option key, what is wrong) for every problem; the key is "" for the whole object.

    `kind` is the destination kind and `mode` the sync's mode, each None when not known yet.
    """
    if options in (None, ""):
        return []
    if not isinstance(options, Mapping):
        return [("", 'must be a JSON object, e.g. {"create_missing_field": false}.')]
    problems: list[tuple[str, str]] = []
    for key, value in options.items():
        kinds = SYNC_OPTION_KINDS.get(key)
        if kinds is None:
            problems.append((key, f"unknown option. Known options: {', '.join(SYNC_OPTION_KINDS)}."))
            continue
        if kind is not None and kind not in kinds:
            applies = " and ".join(KIND_LABELS[k] for k in DestinationKind.values if k in kinds)
            problems.append((key, f"applies only to {applies} destinations; remove it."))
            continue
        if mode is not None and mode != DYNAMIC_MODE and key in DYNAMIC_ONLY_OPTIONS:
            problems.append(
                (key, "applies to dynamic syncs only (a one-time export never removes anyone); "
                 "remove it.")
            )
            continue
        message = _value_problem(key, value)
        if message:
            problems.append((key, message))
    return problems


def _value_problem(key: str, value: Any) -> str | None:
    if key == "create_missing_field" and not isinstance(value, bool):
        return "must be true or false."
    if key in ("member_value", "exited_value") and (not isinstance(value, str) or not value.strip()):
        return 'must be non-empty text, e.g. "realized" / "exited".'
    if key == "property_mapping" and (
        not isinstance(value, dict)
        or not all(
            isinstance(k, str) and k.strip() and isinstance(v, str) and v.strip()
            for k, v in value.items()
        )
    ):
        return 'must be an object of {"profile property": "Column"} text pairs, e.g. {"plan": "Plan"}.'
    if key == "removal_guard_ratio" and (
        isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1
    ):
        return (
            "must be a number greater than 0 and at most 1: the share of synced members a "
            "run may remove without approval (1 turns the guard off)."
        )
    return None
