"""Run history at a glance: a strip of status markers, and trend charts drawn on the server
as SVG. No script and no chart library: the pages work offline and print as they look.

Every function takes RunPoints (syncs.selectors) and returns safe HTML; nothing here reads
the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from syncs.models import RunStatus
from syncs.selectors import RunPoint

# Marker colours: the status badges' text colours, strong enough on white.
MARKER_COLOURS = {
    RunStatus.QUEUED: "#718096",
    RunStatus.RUNNING: "#2b6cb0",
    RunStatus.AWAITING_APPROVAL: "#b7791f",
    RunStatus.SUCCEEDED: "#2f855a",
    RunStatus.PARTIAL: "#dd6b20",
    RunStatus.FAILED: "#c53030",
    RunStatus.CANCELLED: "#a0aec0",
    RunStatus.SKIPPED: "#a0aec0",
}
SERIES_COLOURS = {"added": "#2f855a", "removed": "#b7791f", "failed": "#c53030"}
SERIES_LABELS = {"added": "Added", "removed": "Removed", "failed": "Failed"}


# --- Words -------------------------------------------------------------------------------


def moment_text(moment) -> str:  # type: ignore[no-untyped-def]
    return date_format(timezone.localtime(moment), "j M Y, H:i")


def status_label(status: str) -> str:
    try:
        return str(RunStatus(status).label)
    except ValueError:
        return status


def run_point_title(point: RunPoint) -> str:
    """One line that says what a run did: the marker's and the chart dot's hover text."""
    head = f"Run #{point.run_id} · {status_label(point.status)}"
    if point.is_dry_run:
        counts = (
            f"dry run: would add {point.planned_adds:,} and remove {point.planned_removes:,}, "
            "nothing sent"
        )
    else:
        counts = (
            f"{point.added:,} added, {point.removed:,} removed, {point.failed:,} failed, "
            f"{point.skipped:,} skipped"
        )
    return f"{head} · {moment_text(point.moment)} · {counts}"


def _run_url(point: RunPoint) -> str:
    return reverse("admin:syncs_syncrun_change", args=[point.run_id])


# --- The strip of markers ------------------------------------------------------------------


def run_markers(points: Sequence[RunPoint]) -> SafeString:
    """The runs as coloured squares, oldest first, each a link titled with what it did.
    A dry run is an outlined square: it sent nothing."""
    if not points:
        return format_html('<span class="run-markers-empty">{}</span>', "No runs yet")
    markers = format_html_join(
        "",
        '<a class="run-marker run-marker-{}{}" href="{}" title="{}" aria-label="{}" style="--marker:{}"></a>',
        (
            (
                point.status,
                " run-marker-dry" if point.is_dry_run else "",
                _run_url(point),
                title,
                title,
                MARKER_COLOURS.get(point.status, "#718096"),
            )
            for point in points
            for title in [run_point_title(point)]
        ),
    )
    return format_html(
        '<span class="run-markers" aria-label="{}">{}</span>',
        f"Last {len(points)} run{'s' if len(points) != 1 else ''}, oldest first",
        markers,
    )


# --- Charts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChartBox:
    """Drawing area inside an SVG viewBox: room on the left for the scale, below for dates."""

    width: int = 480
    height: int = 150
    left: int = 56
    right: int = 12
    top: int = 12
    bottom: int = 24

    @property
    def plot_width(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> int:
        return self.height - self.top - self.bottom

    def x(self, index: int, count: int) -> float:
        """Centre of slot `index` of `count` equal slots."""
        return self.left + (index + 0.5) * self.plot_width / max(count, 1)

    def y(self, value: float, top_value: float) -> float:
        return self.top + self.plot_height * (1 - (value / top_value if top_value else 0))


def _nice_top(value: int) -> int:
    """A round scale top at or above `value` (1, 2, 5 × 10^n)."""
    if value <= 0:
        return 1
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _frame(box: ChartBox, top_value: int, first: RunPoint, last: RunPoint) -> SafeString:
    """Axis lines, the scale (0 and its top) and the dates of the first and last run."""
    bottom = box.height - box.bottom
    return format_html(
        '<line class="chart-axis" x1="{left}" y1="{top}" x2="{left}" y2="{bottom}"/>'
        '<line class="chart-axis" x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}"/>'
        '<line class="chart-grid" x1="{left}" y1="{top}" x2="{right}" y2="{top}"/>'
        '<text class="chart-scale" x="{label_x}" y="{top_label}" text-anchor="end">{top_value}</text>'
        '<text class="chart-scale" x="{label_x}" y="{bottom}" text-anchor="end">0</text>'
        '<text class="chart-date" x="{left}" y="{date_y}">{first}</text>'
        '<text class="chart-date" x="{right}" y="{date_y}" text-anchor="end">{last}</text>',
        left=box.left,
        right=box.width - box.right,
        top=box.top,
        bottom=bottom,
        label_x=box.left - 6,
        top_label=box.top + 4,
        top_value=f"{top_value:,}",
        date_y=box.height - 6,
        first=moment_text(first.moment),
        last=moment_text(last.moment),
    )


def _svg(box: ChartBox, css_class: str, label: str, body: SafeString) -> SafeString:
    return format_html(
        '<svg class="run-chart {}" viewBox="0 0 {} {}" role="img" aria-label="{}" '
        'preserveAspectRatio="xMidYMid meet"><title>{}</title>{}</svg>',
        css_class, box.width, box.height, label, label, body,
    )


def members_chart(points: Sequence[RunPoint], *, box: ChartBox | None = None) -> SafeString:
    """Acknowledged members after each run, as a line with a dot per run."""
    box = box or ChartBox()
    known = [p for p in points if p.acknowledged_members is not None]
    if not known:
        return format_html('<p class="run-chart-empty">{}</p>', "No finished run has counted members yet.")
    top_value = _nice_top(max(p.acknowledged_members or 0 for p in known))
    coordinates = [
        (box.x(i, len(known)), box.y(p.acknowledged_members or 0, top_value), p) for i, p in enumerate(known)
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in coordinates)
    dots = format_html_join(
        "",
        '<a href="{}"><circle class="chart-dot" cx="{}" cy="{}" r="3.5"><title>{}</title></circle></a>',
        (
            (_run_url(p), f"{x:.1f}", f"{y:.1f}",
             f"{p.acknowledged_members:,} members acknowledged · {run_point_title(p)}")
            for x, y, p in coordinates
        ),
    )
    body = format_html(
        '{}<polyline class="chart-line" points="{}" fill="none"/>{}',
        _frame(box, top_value, known[0], known[-1]), line, dots,
    )
    label = (
        f"Acknowledged members after each of the last {len(known)} runs: "
        f"{known[0].acknowledged_members:,} then, {known[-1].acknowledged_members:,} now"
    )
    return _svg(box, "run-chart-members", label, body)


def changes_chart(points: Sequence[RunPoint], *, box: ChartBox | None = None) -> SafeString:
    """Users added, removed and failed per run that sent something (dry runs sent nothing),
    as three bars per run."""
    box = box or ChartBox()
    sent = [p for p in points if not p.is_dry_run]
    if not sent:
        return format_html('<p class="run-chart-empty">{}</p>', "No run has sent anything yet.")
    series = ("added", "removed", "failed")
    top_value = _nice_top(max(max(p.added, p.removed, p.failed) for p in sent))
    slot = box.plot_width / len(sent)
    bar = max(1.0, min(10.0, slot / 4))
    bottom = box.height - box.bottom
    bars = []
    for index, point in enumerate(sent):
        centre = box.x(index, len(sent))
        for offset, name in zip((-1.5, -0.5, 0.5), series, strict=True):
            value = getattr(point, name)
            if not value:
                continue
            y = box.y(value, top_value)
            bars.append((
                _run_url(point), SERIES_COLOURS[name], f"{centre + offset * bar:.1f}", f"{y:.1f}", f"{bar:.1f}",
                f"{bottom - y:.1f}", f"{value:,} {name} · {run_point_title(point)}",
            ))
    drawn = format_html_join(
        "",
        '<a href="{}"><rect class="chart-bar" fill="{}" x="{}" y="{}" width="{}" '
        'height="{}"><title>{}</title></rect></a>',
        bars,
    )
    totals = {name: sum(getattr(p, name) for p in sent) for name in series}
    label = (
        f"Users per run over the last {len(sent)} runs that sent: {totals['added']:,} added, "
        f"{totals['removed']:,} removed, {totals['failed']:,} failed"
    )
    return _svg(box, "run-chart-changes", label, format_html("{}{}", _frame(box, top_value, sent[0], sent[-1]), drawn))


def chart_legend() -> SafeString:
    return format_html(
        '<span class="run-chart-legend">{}</span>',
        format_html_join(
            "", '<span class="legend-item"><span class="legend-swatch" style="background:{}"></span>{}</span>',
            ((SERIES_COLOURS[name], SERIES_LABELS[name]) for name in ("added", "removed", "failed")),
        ),
    )


def members_sparkline(points: Sequence[RunPoint], *, width: int = 120, height: int = 26) -> SafeString:
    """Acknowledged members after each run, as a small line with the latest count."""
    known = [p for p in points if p.acknowledged_members is not None]
    if not known:
        return mark_safe("—")
    values = [p.acknowledged_members or 0 for p in known]
    low, high = min(values), max(values)
    step = (width - 4) / max(len(values) - 1, 1)

    def y(value: int) -> float:
        if high == low:  # a steady count: a line through the middle
            return height / 2
        return (height - 3) - (value - low) / (high - low) * (height - 6)

    line = " ".join(f"{2 + i * step:.1f},{y(v):.1f}" for i, v in enumerate(values))
    label = f"Acknowledged members: {values[0]:,} then, {values[-1]:,} now"
    return format_html(
        '<span class="members-trend" title="{}"><svg class="members-sparkline" viewBox="0 0 {} {}" width="{}" '
        'height="{}" role="img" aria-label="{}"><polyline points="{}" fill="none"/></svg>'
        '<span class="members-now">{}</span></span>',
        label, width, height, width, height, label, line, f"{values[-1]:,}",
    )
