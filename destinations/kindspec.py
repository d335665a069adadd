"""What a destination kind says about itself, once: the `KindSpec` each kind's package
defines, and everyone (forms, admin, `apply`, options, the sandbox page, seed_demo) reads.

Nothing here imports Django models or a connector: destinations.models builds its kind
choices from the registry (destinations.kinds), so a spec stays importable on its own.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from django.utils.module_loading import import_string
from django.utils.text import slugify

from destinations.errors import ConfigurationError
from destinations.validation import SettingError


class UnknownKindError(KeyError):
    """A kind no registered package describes; the message names the known ones."""

    def __init__(self, kind: object, known: typing.Iterable[str]) -> None:
        self.kind = kind
        self.message = f"Unknown destination kind {kind!r}. Known kinds: {', '.join(known)}."
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class SettingField:
    """One Destination setting a kind uses (a column of the Destination model)."""

    name: str
    label: str
    help: str
    # Non-empty: the setting is required, and this says where to find it when it is missing.
    required_message: str = ""
    # Turns what people paste into the stored value, or raises SettingError saying why not.
    normalize: Callable[[str], str] | None = None
    # Stored when the setting is left empty.
    default: str = ""
    # The value is a URL the connector calls: it must pass the URL policy as it is saved.
    is_url: bool = False

    @property
    def required(self) -> bool:
        return bool(self.required_message)


@dataclass(frozen=True)
class Fieldset:
    """An admin fieldset of kind settings. Kinds sharing settings share the Fieldset object,
    so the admin shows it once and the change form shows it for each of them."""

    title: str
    description: str
    fields: tuple[str, ...]

    @property
    def css_class(self) -> str:
        return f"kind-{slugify(self.title)}"


@dataclass(frozen=True)
class SyncOption:
    """A key of Sync.options that only this kind understands (see syncs.options)."""

    name: str
    # Why `value` cannot be used ("must be true or false."), or None when it can.
    problem: Callable[[Any], str | None]
    # Only means something when a run may send "not a member": a one-time export never does.
    dynamic_only: bool = False


@dataclass(frozen=True)
class SandboxDescription:
    """How the admin's sandbox page finds this kind's emulator and shows what it received."""

    platform: str
    # The setting holding the emulator's URL, and how that URL ends on a bundled emulator.
    url_setting: str
    url_suffix: str
    # Where the emulator serves /_sandbox/state, relative to its root.
    state_prefix: str
    # Import path of a function (state, highlighted column names) -> list of Tables.
    tables: str


def bounded(default: int | float, minimum: int | float, maximum: int | float) -> Any:
    """A KindOptions field: its default and its bounds (inclusive)."""
    return dataclasses.field(default=default, metadata={"minimum": minimum, "maximum": maximum})


def _shown(number: int | float) -> str:
    return str(number) if isinstance(number, int) else f"{number:g}"


@dataclass(frozen=True)
class OptionBounds:
    name: str
    type: type
    default: int | float
    minimum: int | float
    maximum: int | float


@dataclass(frozen=True)
class KindOptions:
    """A kind's Destination.options, typed and bounded: subclasses are frozen dataclasses
    whose fields are `bounded(...)` numbers. Parsed once, when the connector's config is
    made; every key that does not apply to the kind is refused."""

    _bounds: ClassVar[dict[type, tuple[OptionBounds, ...]]] = {}
    # The options that are the account's API budget (destinations.budget): when several
    # destination records point at one account, the smallest value of each applies to all.
    budget_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def bounds(cls) -> tuple[OptionBounds, ...]:
        known = KindOptions._bounds.get(cls)
        if known is None:
            hints = typing.get_type_hints(cls)
            known = KindOptions._bounds[cls] = tuple(
                OptionBounds(f.name, hints[f.name], f.default, f.metadata["minimum"], f.metadata["maximum"])
                for f in dataclasses.fields(cls)
            )
        return known

    @classmethod
    def clean(cls, options: Any) -> dict[str, Any]:
        """The options as given, each checked and typed (what Destination.options stores),
        or SettingError naming the first problem."""
        if options in (None, ""):
            return {}
        if not isinstance(options, Mapping):
            raise SettingError('Options must be a JSON object, e.g. {"max_concurrency": 2}.')
        known = {b.name: b for b in cls.bounds()}
        cleaned: dict[str, Any] = {}
        for key, value in options.items():
            bounds = known.get(key)
            if bounds is None:
                raise SettingError(
                    f"Unknown option '{key}' for this destination. Known options: "
                    f"{', '.join(sorted(known))}."
                )
            is_number = isinstance(value, int | float) and not isinstance(value, bool)
            if not is_number or (bounds.type is int and not float(value).is_integer()):
                kind_word = "a whole number" if bounds.type is int else "a number"
                raise SettingError(f"Option '{key}' must be {kind_word}, not {value!r}.")
            if not bounds.minimum <= value <= bounds.maximum:
                raise SettingError(
                    f"Option '{key}' must be between {_shown(bounds.minimum)} and {_shown(bounds.maximum)}, "
                    f"not {value!r}."
                )
            cleaned[key] = int(value) if bounds.type is int else float(value)
        return cleaned

    @classmethod
    def parse(cls, options: Any) -> Self:
        return cls(**cls.clean(options))

    @classmethod
    def of(cls, options: Any) -> Self:
        """`options` when already parsed, else parsed; a stored value that no longer passes
        (edited in the database, or saved under older bounds) is a ConfigurationError."""
        if isinstance(options, cls):
            return options
        try:
            return cls.parse(options)
        except SettingError as exc:
            raise ConfigurationError(
                f"The destination's options are refused: {exc} Fix them under Tuning in the "
                "destination's settings.",
                code="bad_options",
            ) from None

    @classmethod
    def described(cls) -> str:
        """'calls_per_20s (50), max_concurrency (5), ...': the options with their defaults."""
        return ", ".join(f"{b.name} ({_shown(b.default)})" for b in cls.bounds())


@dataclass(frozen=True)
class PlannedSend:
    """What a projection of a run's API calls is given: the run's plan and the destination.

    The plan is in plan order, the joining users first, then the leaving ones (as the engine
    sends it, syncs.engine.staging). What costs a read of the plan is asked for only by the
    kinds that need it."""

    adds: int
    removes: int
    # The kind's KindOptions, parsed; the destination's settings; the sync's options.
    options: Any
    settings: Mapping[str, str]
    sync_options: Mapping[str, Any]
    # The sync's field, as written.
    target_field: str = ""
    # A run of this sync has validated its target before (a column it would create exists).
    target_confirmed: bool = False
    # Characters of the joining and of the leaving users' identities (file sizes).
    identity_lengths: Callable[[], tuple[int, int]] = lambda: (0, 0)
    # (position in the plan, 0 first; identity) of each leaving user for whom the synced
    # state keeps no destination id, in plan order (kinds that look such users up).
    leavers_without_remote_id: Callable[[], Sequence[tuple[int, str]]] = lambda: ()

    @property
    def total(self) -> int:
        return self.adds + self.removes


@dataclass(frozen=True)
class CallCount:
    """Some of a run's API calls: how many (at least `minimum`; at most `maximum`, or with
    no bound known when it is None) and what for."""

    what: str
    minimum: int
    maximum: int | None

    @classmethod
    def exactly(cls, what: str, count: int) -> CallCount:
        return cls(what, count, count)

    @classmethod
    def at_least(cls, what: str, count: int) -> CallCount:
        return cls(what, count, None)

    def text(self) -> str:
        return f"{_calls_range(self.minimum, self.maximum)} {self.what}"


def _calls_range(minimum: int, maximum: int | None) -> str:
    if maximum is None:
        return f"at least {minimum:,}"
    if maximum == minimum:
        return f"{minimum:,}"
    return f"{minimum:,} to {maximum:,}"


# Said with every projection: what it counts and what it does not.
PROJECTION_ASSUMES = (
    "Token (identity) requests are not counted. Counted as if every request is answered at "
    "the first try and every user is accepted: retries, and re-sends that isolate rejected "
    "users, add to it."
)


@dataclass(frozen=True)
class CallProjection:
    """The API calls a run of a plan makes (KindSpec.project_calls)."""

    parts: tuple[CallCount, ...]

    @property
    def minimum(self) -> int:
        return sum(p.minimum for p in self.parts)

    @property
    def maximum(self) -> int | None:
        """None: no upper bound is known (status polls last as long as the platform takes)."""
        if any(p.maximum is None for p in self.parts):
            return None
        return sum(p.maximum or 0 for p in self.parts)

    def text(self) -> str:
        """"at least 1,204 API calls", "12 API calls", "2 to 10 API calls"."""
        return f"{_calls_range(self.minimum, self.maximum)} API call{'' if self.minimum == self.maximum == 1 else 's'}"

    def detail(self) -> str:
        """Each part in words, then what the count leaves out."""
        parts = "; ".join(p.text() for p in self.parts if p.minimum or p.maximum != 0)
        return f"{parts or 'no calls'}. {PROJECTION_ASSUMES}"

    def as_json(self) -> dict[str, Any]:
        return {"min": self.minimum, "max": self.maximum}

    def stored(self) -> dict[str, Any]:
        """What a run keeps (SyncRun.plan_sample), read back by `from_stored`."""
        return {**self.as_json(), "parts": [[p.what, p.minimum, p.maximum] for p in self.parts]}

    @classmethod
    def from_stored(cls, stored: Any) -> CallProjection | None:
        try:
            return cls(tuple(CallCount(str(what), int(low), None if high is None else int(high))
                             for what, low, high in stored["parts"]))
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class QuotaDay:
    """The day a call counts toward in a daily quota, and when that day's quota resets."""

    day: str  # YYYY-MM-DD in the platform's time zone
    resets_at: dt.datetime  # aware, UTC


@dataclass(frozen=True)
class DailyQuota:
    """A platform's daily call quota per account: the option holding it, and the day a call
    made at a given moment (aware datetime) counts toward."""

    option: str
    day: Callable[[dt.datetime], QuotaDay]


@dataclass(frozen=True)
class KindSpec:
    """Everything CohortSync knows about one destination kind, in one place."""

    kind: str
    # The kind's name in choices ("Salesforce Marketing Cloud: data extension") and in
    # sentences ("applies only to SFMC data extension destinations").
    label: str
    short_label: str
    # Import path of the connector class (destinations.base.Connector).
    connector: str
    settings: tuple[SettingField, ...]
    fieldsets: tuple[Fieldset, ...]
    options: type[KindOptions]
    official_hosts: tuple[str, ...]
    default_interval_minutes: int
    # The identity property of a new sync when none is given.
    default_identity: str
    # The first URL the connector contacts, from the settings (the sandbox page and
    # "is this a sandbox" read it).
    api_url: Callable[[Mapping[str, str]], str]
    sandbox: SandboxDescription
    # Where to find the client id and secret, and what the sync's field is, for help texts.
    credentials_help: str
    target_help: str
    # What the sync form says when the typed field is not among the destination's fields.
    missing_target_hint: str
    # The platform account the destination writes to (one budget, one set of fields):
    # equal keys are one account, whatever the records are called.
    account_key: Callable[[Mapping[str, str]], str]
    # Where its field names live ("<account>|de:<key>"), and that place in words.
    field_scope: Callable[[Mapping[str, str]], str]
    field_scope_label: Callable[[Mapping[str, str]], str]
    # Import path of a function (PlannedSend) -> CallProjection: the API calls a run of a
    # plan makes, as the kind's connector would send it (what a dry run reports).
    calls_projection: str
    sync_options: tuple[SyncOption, ...] = ()
    # `apply` checks that a sync's target exists in the destination before writing
    # anything (for kinds whose target cannot be created by a run and whose check only
    # reads, such as a Marketo static list).
    target_checked_on_apply: bool = False
    # The account's daily call quota, for platforms that have one (Marketo).
    daily_quota: DailyQuota | None = None

    @property
    def setting_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.settings)

    def connector_class(self) -> Any:
        return import_string(self.connector)

    def project_calls(self, send: PlannedSend) -> CallProjection:
        projection: CallProjection = import_string(self.calls_projection)(send)
        return projection

    def sandbox_tables(self) -> Callable[..., Any]:
        return import_string(self.sandbox.tables)
