"""Print a suite's results and append them to docs/benchmarks.md (old rows are kept)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from bench.suite import StepResult, SuiteResult

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
RESULTS_MARK = "<!-- bench results: `manage.py bench --record` appends below this line -->"

MEMORY_LIMIT_MIB = 150.0
PAGE_LIMIT_MS = 300.0
THROUGHPUT_SHARE = 0.90


@dataclass(frozen=True)
class SizeLimits:
    """The targets that depend on the run's size, as stated for `profiles` profiles."""

    profiles: int
    import_seconds: float  # scaled linearly to the run's size
    plan_seconds: float
    plan_anti_join_factor: float

    @property
    def label(self) -> str:
        return f"{self.profiles // 1_000_000}M"


# 1M: the original targets. 10M (issue 13): import ≤ 5 minutes, a churn plan ≤ 15 s and
# ≤ 1.5× the bare anti-join. A run is held to the limits of the largest size it reaches.
SIZE_LIMITS = (
    SizeLimits(profiles=1_000_000, import_seconds=60.0, plan_seconds=5.0, plan_anti_join_factor=2.0),
    SizeLimits(profiles=10_000_000, import_seconds=300.0, plan_seconds=15.0, plan_anti_join_factor=1.5),
)


def size_limits(profiles: int) -> SizeLimits:
    reached = [limits for limits in SIZE_LIMITS if limits.profiles <= profiles]
    return reached[-1] if reached else SIZE_LIMITS[0]


def _f(value: float | None, fmt: str = ",.0f", none: str = "–") -> str:
    return none if value is None else format(value, fmt)


def step_line(step: StepResult) -> str:
    v = step.values
    if step.step == "pages":
        return "  admin pages: " + "; ".join(
            f"{p['page']}: {p['warm_ms']:.0f} ms (cold {p['cold_ms']:.0f} ms, HTTP {p['status']})"
            for p in v["pages"]
        )
    share = step.share_of_bound
    return (
        f"  {step.path:13} {step.step:16} {v.get('users', 0):>9,} users in {v['seconds']:7.2f} s"
        f" = {_f(step.users_per_second):>7}/s"
        + (f" ({share:.0%} of {_f(step.bound)}/s)" if share is not None else "")
        + (f", plan {v['plan_seconds']:.2f} s" if "plan_seconds" in v else "")
        + (f" (anti-join {v['anti_join_seconds']:.2f} s)" if "anti_join_seconds" in v else "")
        + (f", {v['api_calls']} API calls, {step.write_calls} writes" if "api_calls" in v else "")
        + (f" ({_refusals(step)} refused)" if step.refused else "")
        + f", peak +{v['peak_over_baseline_mib']:.0f} MiB, {v['queries']:,} queries"
        + (f", status {v['status']}" if "status" in v else "")
    )


def _refusals(step: StepResult) -> str:
    return ", ".join(f"{count} × {code}" for code, count in sorted(step.refused.items()))


def markdown_table(result: SuiteResult) -> str:
    rows = [
        "| path | step | users | wall s | validate s | plan s | push s | users/s | bound users/s "
        "| % of bound | API calls | write calls | emulator CPU | peak MiB over baseline | SQL queries | status |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for step in result.steps:
        v = step.values
        if step.step == "pages":
            continue
        seconds = float(v.get("seconds") or 0)
        cpu = f"{step.emulator_cpu_seconds / seconds:.0%}" if seconds and step.path != "profiles" else "–"
        plan = _f(v.get("plan_seconds"), ".2f")
        if "anti_join_seconds" in v:
            plan += f" (anti-join {v['anti_join_seconds']:.2f})"
        rows.append(
            f"| {step.path} | {step.step} | {v.get('users', 0):,} | {seconds:.2f} "
            f"| {_f(v.get('validate_seconds'), '.2f')} | {plan} | {_f(v.get('push_seconds'), '.2f')} "
            f"| {_f(step.users_per_second)} | {_f(step.bound)} "
            f"| {_f(step.share_of_bound * 100 if step.share_of_bound else None, '.0f')} "
            f"| {v.get('api_calls', '–')} | {step.write_calls if 'api_calls' in v else '–'}"
            f"{' (' + _refusals(step) + ' refused)' if step.refused else ''} | {cpu} "
            f"| {v['peak_over_baseline_mib']:.0f} | {v['queries']:,} | {v.get('status', '–')} |"
        )
    pages = [s for s in result.steps if s.step == "pages"]
    if pages:
        rows += ["", "| admin page | warm ms (median of 3) | cold ms | HTTP |", "|---|---:|---:|---|"]
        for page in pages[0].values["pages"]:
            rows.append(f"| {page['page']} | {page['warm_ms']:.0f} | {page['cold_ms']:.0f} | {page['status']} |")
    return "\n".join(rows)


def targets(result: SuiteResult) -> list[tuple[str, bool, str]]:
    """(target, met, evidence) for every target the suite measured."""
    checks: list[tuple[str, bool, str]] = []
    limits = size_limits(result.profiles)
    import_limit = limits.import_seconds * result.profiles / limits.profiles
    for step in result.steps:
        v = step.values
        if step.step == "import":
            checks.append((
                f"import of {result.profiles:,} profiles ≤ {limits.import_seconds:.0f} s ({limits.label})",
                v["seconds"] <= import_limit,
                f"{v['seconds']:.1f} s (limit scaled to {result.profiles:,}: {import_limit:.1f} s)",
            ))
        if step.step == "first export" and step.share_of_bound is not None:
            checks.append((
                f"{step.path}: throughput ≥ {THROUGHPUT_SHARE:.0%} of the bound",
                step.share_of_bound >= THROUGHPUT_SHARE,
                f"{step.users_per_second:,.0f}/s of {step.bound:,.0f}/s = {step.share_of_bound:.0%}",
            ))
        if step.step == "1% churn" and "plan_seconds" in v:
            anti = v.get("anti_join_seconds") or 0.0
            ok = (v["plan_seconds"] <= limits.plan_seconds
                  and v["plan_seconds"] <= limits.plan_anti_join_factor * max(anti, 1e-9))
            checks.append((
                f"{step.path}: planning 1 % churn ≤ {limits.plan_seconds:.0f} s and ≤ "
                f"{limits.plan_anti_join_factor:g}× the bare anti-join",
                ok, f"plan {v['plan_seconds']:.2f} s, anti-join {anti:.2f} s "
                f"({v['plan_seconds'] / max(anti, 1e-9):.1f}×)",
            ))
        if step.step == "nothing changed":
            checks.append((
                f"{step.path}: nothing changed → no destination call beyond validation",
                step.write_calls == 0 and not v.get("push_seconds"),
                f"{v.get('api_calls')} API calls (validation), {step.write_calls} writes",
            ))
        if "status" in v:
            checks.append((
                f"{step.path} {step.step}: peak memory ≤ {MEMORY_LIMIT_MIB:.0f} MiB over baseline",
                v["peak_over_baseline_mib"] <= MEMORY_LIMIT_MIB and v.get("peak_reset", False),
                f"+{v['peak_over_baseline_mib']:.0f} MiB (baseline {v['baseline_mib']:.0f} MiB)",
            ))
        if step.step == "pages":
            for page in v["pages"]:
                checks.append((
                    f"admin {page['page']} ≤ {PAGE_LIMIT_MS:.0f} ms",
                    page["warm_ms"] <= PAGE_LIMIT_MS and page["status"] == 200,
                    f"{page['warm_ms']:.0f} ms warm, {page['cold_ms']:.0f} ms cold, HTTP {page['status']}",
                ))
    return checks


def summary_text(result: SuiteResult) -> str:
    lines = [
        "",
        f"{result.profiles:,} profiles, paths: {', '.join(result.paths)}; total {result.total_seconds:.0f} s",
        markdown_table(result),
        "",
        "Targets:",
    ]
    lines += console_verdict_lines(targets(result))
    return "\n".join(lines)


def record(result: SuiteResult, *, doc: Path = DOC) -> Path:
    """Append this run to the results section of docs/benchmarks.md."""
    machine = result.machine
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = [
        "",
        f"### {when}: {result.profiles:,} profiles ({', '.join(result.paths)})",
        "",
        f"`{result.command}` (total {result.total_seconds:.0f} s). {machine_text(machine)}",
        "",
        markdown_table(result),
        "",
        "Targets:",
        "",
    ]
    return results_append(block + verdict_lines(targets(result)), doc=doc)


def machine_text(machine: dict[str, str]) -> str:
    """"Machine: 2 cores ..., commit abc1234." as a recorded run states it."""
    return (
        f"Machine: {machine.get('cores')} cores {machine.get('cpu', '?')}, {machine.get('memory', '?')} RAM, "
        f"PostgreSQL {machine.get('postgresql', '?')}, Python {machine.get('python')}, commit "
        f"{machine.get('commit')}"
        + (f"; broker {machine['broker']}, API budgets in {machine['budget_store']}" if machine.get("broker") else "")
        + (f"; load average (1 min) at start / end: {machine['load']}." if machine.get("load") else ".")
    )


def console_verdict_lines(checks: list[tuple[str, bool, str]]) -> list[str]:
    """One console line per target: [met] or [MISSED], with its evidence."""
    return [f"  [{'met' if ok else 'MISSED'}] {name}: {evidence}" for name, ok, evidence in checks]


def verdict_lines(checks: list[tuple[str, bool, str]]) -> list[str]:
    """One Markdown list item per target: met, or **missed**, with its evidence."""
    return [f"- {'met' if ok else '**missed**'}: {name}: {evidence}" for name, ok, evidence in checks]


def results_append(block: list[str], *, doc: Path = DOC) -> Path:
    """Append `block` (lines) to the results section of `doc`, creating what is missing."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else f"# Benchmarks\n\n## Results\n\n{RESULTS_MARK}\n"
    if RESULTS_MARK not in text:
        text = text.rstrip("\n") + f"\n\n## Results\n\n{RESULTS_MARK}\n"
    doc.write_text(text.rstrip("\n") + "\n" + "\n".join(block) + "\n", encoding="utf-8")
    return doc
