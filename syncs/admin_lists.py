"""Cells of the sync, run and failure lists, sized so a list fits a 1280 px screen: short
labels, counts right-aligned, and long text on one line, cut with an ellipsis, with the
whole of it in the cell's title (and on the detail page). Styles:
templates/admin/syncs/list_styles.html.
"""

from __future__ import annotations

import datetime as dt

from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString

from syncs.models import SyncFailure, SyncRun

SHORT_TRIGGERS = {
    SyncRun.Trigger.MANUAL: "manual",
    SyncRun.Trigger.SCHEDULE: "schedule",
    SyncRun.Trigger.RETRY: "retry",
    SyncRun.Trigger.CLI: "command line",
}
SHORT_OPERATIONS = {
    SyncFailure.Operation.ADD: "add",
    SyncFailure.Operation.REMOVE: "remove",
    SyncFailure.Operation.SKIP: "skipped",
}


def compact_time(moment: dt.datetime | None) -> SafeString:
    """"1 Dec 05:16" (the year only when it is not this one), the full date in the title."""
    if moment is None:
        return format_html("{}", "—")
    local = timezone.localtime(moment)
    shown = "j M H:i" if local.year == timezone.localtime().year else "j M Y"
    return format_html('<time datetime="{}" title="{}">{}</time>', local.isoformat(),
                       date_format(local, "DATETIME_FORMAT"), date_format(local, shown))


def one_line(text: str, *, css_class: str = "") -> SafeString:
    """Text kept to one line of its column (see list_styles.html); the whole text is the
    title, so nothing cut off is out of reach."""
    return format_html('<span class="one-line {}" title="{}">{}</span>', css_class, text, text)


def sub_line(text: str) -> SafeString:
    return format_html('<span class="list-sub one-line" title="{}">{}</span>', text, text)


def run_cell(run: SyncRun) -> SafeString:
    """"#12" and, below it, the sync's name."""
    return format_html('<span class="run-number">#{}</span>{}', run.pk, sub_line(run.sync.name))


def run_link_cell(run: SyncRun, *, is_dry_run: bool = False) -> SafeString:
    """A link to the run ("#12", titled with when it was created), its sync's name below."""
    url = reverse("admin:syncs_syncrun_change", args=[run.pk])
    dry = format_html(' <span class="run-dry">{}</span>', "dry run") if is_dry_run else ""
    when = date_format(timezone.localtime(run.created_at), "DATETIME_FORMAT")
    return format_html('<a href="{}" title="{}">#{}</a>{}{}', url, f"Run #{run.pk}, {when}", run.pk, dry,
                       sub_line(run.sync.name))


def trigger_cell(run: SyncRun) -> SafeString:
    return sub_line(trigger_text(run))


def trigger_text(run: SyncRun) -> str:
    who = f" · {run.triggered_by}" if run.triggered_by_id else ""
    return f"{SHORT_TRIGGERS.get(run.trigger, run.trigger)}{who}"


def count_cell(run: SyncRun, *, operation: str) -> SafeString:
    """Users acknowledged for one operation ("adds" or "removes"), with the failed ones on a
    second line; a dry run shows what it planned instead (it sent nothing)."""
    kind = operation.removesuffix("s")
    if run.is_dry_run:
        planned = getattr(run, f"planned_{operation}")
        return format_html('<span class="count-planned" title="{}">{}</span>',
                           f"Planned by this dry run: {planned:,} to {kind}, nothing sent", f"{planned:,}")
    succeeded = getattr(run, f"succeeded_{operation}")
    failed = getattr(run, f"failed_{operation}")
    shown = format_html('<span title="{}">{}</span>', f"{succeeded:,} acknowledged", f"{succeeded:,}")
    if not failed:
        return shown
    return format_html('{}<span class="count-failed" title="{}">{} ✗</span>', shown,
                       f"{failed:,} failed to {kind}", f"{failed:,}")


def number(value: int) -> str:
    return f"{value:,}"


def failure_identity_cell(failure: SyncFailure) -> SafeString:
    identity = failure.identity_value or "—"
    if failure.distinct_id and failure.distinct_id != failure.identity_value:
        return format_html("{}{}", one_line(identity), sub_line(failure.distinct_id))
    return one_line(identity)


def failure_operation_cell(failure: SyncFailure) -> SafeString:
    return format_html("{}{}", SHORT_OPERATIONS.get(failure.operation, failure.operation), sub_line(failure.code))


def failure_message_cell(failure: SyncFailure) -> SafeString:
    """The message on one line, linked to the failure's page where it is shown whole."""
    url = reverse("admin:syncs_syncfailure_change", args=[failure.pk])
    return format_html('<a class="one-line message" href="{}" title="{}">{}</a>', url, failure.message,
                       failure.message)
