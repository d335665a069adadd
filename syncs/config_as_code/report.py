"""The outcome of `config_apply`: one line per entry, totals, errors."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EntryChange:
    """What applying did (or, in a dry run, would do) to one entry."""

    section: str  # "destinations" | "cohorts" | "syncs"
    name: str
    action: str  # "created" | "updated" | "unchanged"
    fields: tuple[str, ...] = ()

    @property
    def kind_label(self) -> str:
        return self.section[:-1]


@dataclass
class ApplyReport:
    dry_run: bool = False
    changes: list[EntryChange] = field(default_factory=list)
    # Each error names the entry and the field; when there is any, nothing was written.
    errors: list[str] = field(default_factory=list)
    # Problems after the commit (the configuration itself was saved).
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def totals(self) -> dict[str, int]:
        counts = {"created": 0, "updated": 0, "unchanged": 0}
        for change in self.changes:
            counts[change.action] += 1
        return counts

    def lines(self) -> list[str]:
        """Human-readable report: one line per entry, then totals. Never contains secrets."""
        if self.errors:
            noun = "error" if len(self.errors) == 1 else "errors"
            return [*self.errors, f"Nothing was written: {len(self.errors)} {noun}."]
        out = []
        for change in self.changes:
            verb = change.action
            if self.dry_run and verb != "unchanged":
                verb = f"would be {verb}"
            detail = f" ({', '.join(change.fields)})" if change.fields else ""
            out.append(f'{change.kind_label} "{change.name}": {verb}{detail}')
        totals = self.totals
        summary = (
            f"{totals['created']} created, {totals['updated']} updated, "
            f"{totals['unchanged']} unchanged."
        )
        if self.dry_run:
            summary = f"Dry run, nothing was written: {summary}"
        out.append(summary)
        out.extend(f"Warning: {warning}" for warning in self.warnings)
        return out
