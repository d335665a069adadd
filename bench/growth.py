"""How each bench figure grows with the number of profiles, read from the recorded results.

`manage.py bench --growth` reads the runs `--record` appended to docs/benchmarks.md, takes
for every size the latest run that measured a figure, and reports the growth exponent
between consecutive sizes, k = log(f2 / f1) / log(n2 / n1) (1 = linear, 0 = flat), and
what the largest size's figure would become at a target size by the last measured
exponent: f(n) = f_last × (n / n_last) ** k.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

EXTRAPOLATE_TO = 30_000_000
UNPROJECTED = ("% of bound",)

_HEADING = re.compile(r"^### (?P<when>\d{4}-\d\d-\d\d \d\d:\d\d UTC): (?P<profiles>[\d,]+) profiles \((?P<paths>[^)]*)\)")
_ANTI_JOIN = re.compile(r"^(?P<plan>[\d.]+) \(anti-join (?P<anti>[\d.]+)\)$")
# "run detail (10,000,000 failure rows)" and "cohort page (bench: cohort)" are one page at every size.
_PAGE_SUFFIX = re.compile(r" \(.*\)$")


@dataclass(frozen=True)
class Figure:
    """One measured quantity: (path, step, what), e.g. ("sfmc_async", "1% churn", "plan s")."""

    path: str
    step: str
    what: str

    def label(self) -> str:
        return f"{self.path} {self.step}: {self.what}" if self.step else f"{self.path}: {self.what}"


@dataclass
class Record:
    when: str
    profiles: int
    values: dict[Figure, float] = field(default_factory=dict)


# Columns of the results table worth following, by step ("*" = every sync step).
_COLUMNS = {
    "import": ("wall s", "peak MiB over baseline"),
    "first export": ("wall s", "% of bound", "peak MiB over baseline"),
    "1% churn": ("plan s", "anti-join s", "peak MiB over baseline"),
    "nothing changed": ("wall s", "plan s"),
}


def _number(cell: str) -> float | None:
    cell = cell.strip().replace(",", "")
    try:
        return float(cell)
    except ValueError:
        return None


def records_parse(text: str) -> list[Record]:
    """Every recorded run in `text` (docs/benchmarks.md), in file order."""
    records: list[Record] = []
    current: Record | None = None
    header: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            # Only a run's own heading opens a run; any other section (a growth table) closes it.
            heading = _HEADING.match(line)
            current = heading and Record(when=heading["when"], profiles=int(heading["profiles"].replace(",", "")))
            if current:
                records.append(current)
            header = []
            continue
        if current is None or not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in ("path", "admin page"):
            header = cells
            continue
        if not header or set(cells[0]) <= {"-", ":"}:
            continue
        row = dict(zip(header, cells, strict=False))
        values = current.values
        if header[0] == "admin page":
            warm = _number(row.get("warm ms (median of 3)", ""))
            if warm is not None:
                values[Figure("admin", _PAGE_SUFFIX.sub("", row["admin page"]), "warm ms")] = warm
            continue
        step = row.get("step", "")
        if step not in _COLUMNS:
            continue
        plan = _ANTI_JOIN.match(row.get("plan s", ""))
        if plan:
            row["plan s"], row["anti-join s"] = plan["plan"], plan["anti"]
        for what in _COLUMNS[step]:
            value = _number(row.get(what, ""))
            if value is not None:
                values[Figure(row["path"], step, what)] = value
    return records


def growth_exponent(*, n1: float, f1: float, n2: float, f2: float) -> float | None:
    """k with f2 / f1 = (n2 / n1) ** k; None when either figure is not positive."""
    if f1 <= 0 or f2 <= 0 or n1 <= 0 or n2 <= 0 or n1 == n2:
        return None
    return math.log(f2 / f1) / math.log(n2 / n1)


def extrapolate(*, n: float, f: float, exponent: float, to: float) -> float:
    return f * (to / n) ** exponent


@dataclass
class GrowthRow:
    figure: Figure
    # (profiles, value, when) per size, smallest first.
    points: list[tuple[int, float, str]]
    exponents: list[float | None]
    extrapolated: float | None


def growth_rows(
    records: Sequence[Record], *, sizes: Sequence[int] | None = None, to: int = EXTRAPOLATE_TO,
    paths: Sequence[str] | None = None,
) -> list[GrowthRow]:
    """Per figure: its latest recorded value at each size (`sizes`, or every size that has
    it), the exponent between consecutive sizes, and its value at `to` by the last one."""
    latest: dict[Figure, dict[int, tuple[float, str]]] = {}
    for record in records:  # file order: later runs replace earlier ones
        if sizes is not None and record.profiles not in sizes:
            continue
        for figure, value in record.values.items():
            if paths is not None and figure.path not in (*paths, "profiles", "admin"):
                continue
            latest.setdefault(figure, {})[record.profiles] = (value, record.when)
    rows = []
    for figure, by_size in latest.items():
        if len(by_size) < 2:
            continue
        points = [(n, v, when) for n, (v, when) in sorted(by_size.items())]
        exponents = [
            growth_exponent(n1=a[0], f1=a[1], n2=b[0], f2=b[1]) for a, b in zip(points, points[1:], strict=False)
        ]
        last_n, last_f, _ = points[-1]
        k = exponents[-1]
        # A share of the bound cannot pass 100 %: its exponent is shown, not projected.
        projectable = k is not None and figure.what not in UNPROJECTED
        rows.append(GrowthRow(
            figure=figure, points=points, exponents=exponents,
            extrapolated=extrapolate(n=last_n, f=last_f, exponent=k, to=to) if projectable else None,
        ))
    return rows


def _size(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return f"{n:,}"


def _value(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"


def growth_table(rows: Sequence[GrowthRow], *, to: int = EXTRAPOLATE_TO) -> str:
    """A markdown table: one row per figure, its value per size, the exponents, the extrapolation."""
    sizes = sorted({n for row in rows for n, _, _ in row.points})
    pairs = list(zip(sizes, sizes[1:], strict=False))
    head = (["figure", *(_size(n) for n in sizes), *(f"k {_size(a)}→{_size(b)}" for a, b in pairs),
             f"{_size(to)} by the last k"])
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for row in rows:
        by_size = {n: v for n, v, _ in row.points}
        exponents = {(a[0], b[0]): k for a, b, k in zip(row.points, row.points[1:], row.exponents, strict=False)}
        cells = [row.figure.label(), *(_value(by_size[n]) if n in by_size else "–" for n in sizes)]
        cells += [f"{exponents[p]:.2f}" if exponents.get(p) is not None else "–" for p in pairs]
        cells.append(_value(row.extrapolated) if row.extrapolated is not None else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def growth_sources(rows: Sequence[GrowthRow]) -> str:
    """Which recorded runs the table was read from."""
    runs = sorted({(n, when) for row in rows for n, _, when in row.points})
    return "; ".join(f"{_size(n)}: {when}" for n, when in runs)


def growth_block(rows: Sequence[GrowthRow], *, to: int = EXTRAPOLATE_TO) -> list[str]:
    """The lines `bench --growth --record` appends to docs/benchmarks.md."""
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [
        "",
        f"### {when}: growth with the number of profiles",
        "",
        f"`python manage.py bench --growth --record`, from the latest recorded run of each size "
        f"({growth_sources(rows)}). k is the growth exponent between two sizes (log(f2/f1) / "
        f"log(n2/n1): 1 = linear, 0 = flat); the last column is the largest size's figure × "
        f"({_size(to)} / size) ** k.",
        "",
        growth_table(rows, to=to),
    ]
