"""The registry of destination kinds: one line per kind, naming its package's KindSpec.

Everything that depends on the kind (the Destination model's choices, the settings form,
the admin and its change form, `apply`, option checks, the sandbox page, seed_demo, the
URL policy's official hosts) iterates over this registry. An unknown kind is an
UnknownKindError everywhere, never another kind's branch.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from django.utils.module_loading import import_string

from destinations.kindspec import Fieldset, KindSpec, SettingField, UnknownKindError

REGISTERED_KINDS: tuple[str, ...] = (
    "destinations.sfmc_data_extension.spec.SPEC",
    "destinations.sfmc_contacts.spec.SPEC",
    "destinations.marketo.spec.SPEC",
    "destinations.marketo_static_list.spec.SPEC",
)


@cache
def kind_specs() -> tuple[KindSpec, ...]:
    return tuple(import_string(path) for path in REGISTERED_KINDS)


@cache
def _by_kind() -> dict[str, KindSpec]:
    return {spec.kind: spec for spec in kind_specs()}


def kind_spec(kind: object) -> KindSpec:
    """The spec of `kind`, or UnknownKindError."""
    spec = _by_kind().get(kind) if isinstance(kind, str) else None
    if spec is None:
        raise UnknownKindError(kind, kind_names())
    return spec


def kind_names() -> tuple[str, ...]:
    return tuple(spec.kind for spec in kind_specs())


def kind_choices() -> list[tuple[str, str]]:
    """Destination.kind's choices (a callable, so a new kind needs no migration)."""
    return [(spec.kind, spec.label) for spec in kind_specs()]


def kind_short_labels(kinds: Iterable[str]) -> str:
    """'SFMC data extension and Marketo', in registry order."""
    wanted = set(kinds)
    return " and ".join(spec.short_label for spec in kind_specs() if spec.kind in wanted)


@cache
def all_settings() -> tuple[SettingField, ...]:
    """Every kind setting once (the first kind to declare a setting describes it)."""
    seen: dict[str, SettingField] = {}
    for spec in kind_specs():
        for setting in spec.settings:
            seen.setdefault(setting.name, setting)
    return tuple(seen.values())


def all_setting_names() -> tuple[str, ...]:
    return tuple(setting.name for setting in all_settings())


@cache
def all_fieldsets() -> tuple[Fieldset, ...]:
    """Every kind fieldset once, in registry order."""
    seen: dict[str, Fieldset] = {}
    for spec in kind_specs():
        for fieldset in spec.fieldsets:
            seen.setdefault(fieldset.css_class, fieldset)
    return tuple(seen.values())


def kind_fieldset_classes() -> dict[str, list[str]]:
    """kind -> the CSS classes of its fieldsets (the change form shows only those)."""
    return {spec.kind: [f.css_class for f in spec.fieldsets] for spec in kind_specs()}


@cache
def official_host_suffixes() -> tuple[str, ...]:
    """Host suffixes of every kind's official API hosts (destinations.url_policy)."""
    return tuple(dict.fromkeys(host for spec in kind_specs() for host in spec.official_hosts))
