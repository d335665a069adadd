"""bench --growth: the exponent between sizes and the projection, read from recorded runs."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from bench.growth import (
    Figure,
    extrapolate,
    growth_exponent,
    growth_rows,
    growth_table,
    records_parse,
)

RUN = """
### 2026-12-01 10:{minute} UTC: {profiles} profiles (sfmc_async)

`python manage.py bench` (total 1 s).

| path | step | users | wall s | validate s | plan s | push s | users/s | bound users/s | % of bound | API calls | write calls | emulator CPU | peak MiB over baseline | SQL queries | status |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|
| profiles | import | {profiles} | {import_s} | – | – | – | 1 | – | – | – | – | – | 25 | 21 | – |
| sfmc_async | first export | 99,000 | 9.35 | 0.73 | 0.03 | 8.49 | 11,441 | 12,375 | {share} | 15 | 4 | 8% | 71 | 97 | succeeded |
| sfmc_async | 1% churn | 1,000 | 4.63 | 0.06 | {plan} (anti-join 0.32) | 4.03 | 216 | 250 | 86 | 4 | 1 | 0% | 2 | 56 | succeeded |

| admin page | warm ms (median of 3) | cold ms | HTTP |
|---|---:|---:|---|
| run detail ({profiles} failure rows) | {page} | 14 | 200 |
"""


def test_the_growth_exponent_is_the_slope_in_log_log() -> None:
    # Linear: 10× the profiles, 10× the seconds.
    assert growth_exponent(n1=1e5, f1=2.0, n2=1e6, f2=20.0) == pytest.approx(1.0)
    # Square root: 100× the profiles, 10× the seconds.
    assert growth_exponent(n1=1e5, f1=3.0, n2=1e7, f2=30.0) == pytest.approx(0.5)
    assert growth_exponent(n1=1e6, f1=5.0, n2=1e7, f2=5.0) == pytest.approx(0.0)
    # A figure of 0 has no exponent.
    assert growth_exponent(n1=1e6, f1=0.0, n2=1e7, f2=5.0) is None
    # 10M → 30M at k = 0.5: × √3.
    assert extrapolate(n=1e7, f=100.0, exponent=0.5, to=3e7) == pytest.approx(173.205, rel=1e-4)


def test_growth_reads_the_latest_run_of_each_size_and_projects_by_the_last_exponent() -> None:
    text = "\n".join([
        RUN.format(minute="00", profiles="100,000", import_s="9.99", plan="9.00", page="50", share="50"),  # superseded
        RUN.format(minute="01", profiles="100,000", import_s="2.00", plan="0.40", page="10", share="90"),
        RUN.format(minute="02", profiles="1,000,000", import_s="20.00", plan="1.60", page="10", share="95"),
        RUN.format(minute="03", profiles="10,000,000", import_s="200.00", plan="6.40", page="20", share="99"),
        "### 2026-12-01 10:04 UTC: growth with the number of profiles\n\n| figure | 1M |\n|---|---:|\n| x | 1 |",
    ])
    records = records_parse(text)
    assert [r.profiles for r in records] == [100_000, 100_000, 1_000_000, 10_000_000]
    # The growth table after the runs is not read as a run's rows.
    assert len(records[-1].values) == len(records[-2].values)

    rows = {row.figure: row for row in growth_rows(records)}
    imported = rows[Figure("profiles", "import", "wall s")]
    assert [v for _, v, _ in imported.points] == [2.0, 20.0, 200.0]  # the 10:00 run is superseded
    assert imported.exponents == [pytest.approx(1.0), pytest.approx(1.0)]
    assert imported.extrapolated == pytest.approx(600.0)
    plan = rows[Figure("sfmc_async", "1% churn", "plan s")]
    assert plan.exponents == [pytest.approx(0.6021, abs=1e-4), pytest.approx(0.6021, abs=1e-4)]  # ×4 per ×10
    assert rows[Figure("sfmc_async", "1% churn", "anti-join s")].exponents == [0.0, 0.0]
    # Pages are one figure whatever their label counts.
    page = rows[Figure("admin", "run detail", "warm ms")]
    assert page.exponents[0] == pytest.approx(0.0) and page.exponents[1] == pytest.approx(0.30103, abs=1e-4)
    # A share of the bound is not projected past 100 %.
    share = rows[Figure("sfmc_async", "first export", "% of bound")]
    assert share.exponents[1] > 0 and share.extrapolated is None

    table = growth_table(list(rows.values()))
    assert "| profiles import: wall s | 2.00 | 20.00 | 200 | 1.00 | 1.00 | 600 |" in table


def test_bench_growth_prints_the_table_of_the_recorded_runs_without_a_database() -> None:
    out = io.StringIO()
    # No bench database (nor PostgreSQL) is needed to read docs/benchmarks.md.
    call_command("bench", "--growth", "--paths", "sfmc_async", stdout=out)
    table = out.getvalue()
    assert table.startswith("| figure |") and "k 100k→1M" in table and "30M by the last k" in table
    assert "sfmc_async 1% churn: plan s" in table and "marketo_bulk" not in table
