"""Sync.options: the keys a sync understands, where they apply, and what values they take.

Shared by the admin form and `manage.py apply`, so both accept and reject the same options
with the same words. The engine's own options apply to every kind; the others are declared
by the kinds that understand them (KindSpec.sync_options).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from destinations.kinds import kind_short_labels, kind_spec, kind_specs
from destinations.kindspec import SyncOption


def _removal_guard_ratio_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        return (
            "must be a number greater than 0 and at most 1: the share of synced members a "
            "run may remove without approval (1 turns the guard off)."
        )
    return None


# Options of the engine itself, for syncs of every kind.
ENGINE_OPTIONS = (SyncOption("removal_guard_ratio", _removal_guard_ratio_problem, dynamic_only=True),)
DYNAMIC_MODE = "dynamic"


def _option_kinds() -> dict[str, tuple[SyncOption, frozenset[str]]]:
    """option name -> (the option, the kinds it applies to)."""
    every_kind = frozenset(spec.kind for spec in kind_specs())
    known: dict[str, tuple[SyncOption, frozenset[str]]] = {o.name: (o, every_kind) for o in ENGINE_OPTIONS}
    for spec in kind_specs():
        for option in spec.sync_options:
            first, kinds = known.get(option.name, (option, frozenset()))
            known[option.name] = (first, kinds | {spec.kind})
    return known


def sync_option_problems(
    options: Any, *, kind: str | None, mode: str | None = None
) -> list[tuple[str, str]]:
    """(option key, what is wrong) for every problem; the key is "" for the whole object.

    `kind` is the destination kind and `mode` the sync's mode, each None when not known yet
    (an unknown kind is an UnknownKindError).
    """
    if options in (None, ""):
        return []
    if not isinstance(options, Mapping):
        return [("", 'must be a JSON object, e.g. {"create_missing_field": false}.')]
    if kind is not None:
        kind_spec(kind)
    known = _option_kinds()
    problems: list[tuple[str, str]] = []
    for key, value in options.items():
        if key not in known:
            problems.append((key, f"unknown option. Known options: {', '.join(known)}."))
            continue
        option, kinds = known[key]
        if kind is not None and kind not in kinds:
            problems.append((key, f"applies only to {kind_short_labels(kinds)} destinations; remove it."))
            continue
        if mode is not None and mode != DYNAMIC_MODE and option.dynamic_only:
            problems.append(
                (key, "applies to dynamic syncs only (a one-time export never removes anyone); "
                 "remove it.")
            )
            continue
        message = option.problem(value)
        if message:
            problems.append((key, message))
    return problems
