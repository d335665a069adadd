"""Config as code: create or update destinations, cohorts, syncs and alert rules from one
JSON document.

`manage.py apply PATH.json` and `manage.py seed_demo` both go through `config_apply`. The
document is the desired state of the entries it names (matched by `name`); entries it does
not name are left alone, nothing is ever deleted. Applying is all or nothing: every entry is
validated first and every problem is reported, each naming the entry and the field; only a
document without problems is written, in one transaction. Applying the same document twice
writes nothing the second time (no `updated_at` bump, no re-encrypted secret).

A dry run and a real run always agree: every value is checked for what the database can
store before planning (cohortsync_site.json_values), and a dry run performs the same writes
inside the transaction and rolls them back, so anything the database would still refuse
shows up in the dry run too, as an error rather than a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.db import DataError, IntegrityError, transaction

from alerts.config_as_code import plan_alerts
from cohortsync_site.database import database_error_text
from cohortsync_site.json_values import shown_text
from syncs.config_as_code.checks import SECTIONS, json_type, sections_values_check
from syncs.config_as_code.plans import Plan, plan_cohorts, plan_destinations
from syncs.config_as_code.report import ApplyReport, EntryChange
from syncs.config_as_code.source_plans import (
    import_schedules_update,
    plan_profile_imports,
    plan_sources,
)
from syncs.config_as_code.sync_plans import plan_syncs
from syncs.config_as_code.writing import plan_changes, plan_write, schedules_update

__all__ = ["ApplyReport", "EntryChange", "config_apply"]

logger = logging.getLogger(__name__)


class _Rollback(Exception):
    """Leave the transaction without writing anything."""


class _DryRunDone(Exception):
    """The dry run's writes succeeded; roll them back and keep the report."""


def config_apply(
    *, document: Any, environ: Mapping[str, str], dry_run: bool = False, check_targets: bool = True
) -> ApplyReport:
    """Validate `document` and, unless `dry_run` or invalid, write it in one transaction.

    `check_targets`: for kinds whose spec asks for it, check that the targets of new or
    re-targeted syncs exist in the destination (False: leave it to the first run).

    After the commit, `syncs.services.sync_schedule_update` runs for every sync that was
    created or changed, so schedules follow the configuration.
    """
    report = ApplyReport(dry_run=dry_run)
    sections = _document_sections(document, report.errors)
    if report.errors:
        return report
    # Entries holding a value no database can store are reported here and skipped by the
    # planners, which would otherwise send those values to the database in their lookups.
    sections_values_check(sections, report.errors)
    try:
        with transaction.atomic():
            plan = Plan()
            plan.sources = plan_sources(sections["sources"], environ, report.errors)
            # Named in the document but invalid: their own errors say why, not "not found".
            invalid_sources = frozenset(_names(sections["sources"]) - {p.name for p in plan.sources})
            plan_destinations(sections["destinations"], environ, plan, report.errors)
            plan_cohorts(sections["cohorts"], plan, report.errors, invalid_sources=invalid_sources)
            plan.profile_imports = plan_profile_imports(
                sections["profile_imports"], report.errors,
                source_names={p.name for p in plan.sources}, invalid_sources=set(invalid_sources),
            )
            plan_syncs(sections["syncs"], sections, plan, report.errors, check_targets=check_targets)
            plan.alerts = plan_alerts(
                sections["alerts"], environ, sink=report.errors,
                document_syncs=_names(sections["syncs"]), document_destinations=_names(sections["destinations"]),
            )
            if report.errors:
                raise _Rollback
            report.changes = plan_changes(plan)
            changed_sync_ids = plan_write(plan)
            if dry_run:
                raise _DryRunDone
            if changed_sync_ids:
                transaction.on_commit(lambda: schedules_update(changed_sync_ids, report.warnings))
            if plan.written_import_ids:
                transaction.on_commit(
                    lambda: import_schedules_update(plan.written_import_ids, report.warnings)
                )
    except _DryRunDone:
        pass
    except _Rollback:
        report.changes = []
    except (DataError, UnicodeEncodeError, OverflowError) as exc:
        # Every value was checked before planning; this is the database's (or its driver's)
        # last word on one we did not foresee. Nothing was written either way.
        logger.warning("apply: the database refused a value", exc_info=True)
        report.changes = []
        report.errors.append(
            f"document: the database refused a value ({database_error_text(exc)}). Nothing "
            "was written."
        )
    except IntegrityError:
        # Someone else changed the same rows between our checks and our writes, or two syncs
        # swap fields in one go; either way nothing was written.
        logger.warning("apply: integrity error while writing", exc_info=True)
        report.changes = []
        report.errors.append(
            "document: the database refused the change (a name or a destination field is "
            "already taken, maybe by a change made at the same time). Nothing was written; "
            "run apply again. To swap fields between two syncs, apply it in two steps."
        )
    return report


def _names(entries: list[Any]) -> set[str]:
    return {e["name"].strip() for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)}


def _document_sections(document: Any, errors: list[str]) -> dict[str, list[Any]]:
    sections: dict[str, list[Any]] = {name: [] for name in SECTIONS}
    if not isinstance(document, dict):
        errors.append(
            'document: must be a JSON object like {"destinations": [...], "cohorts": [...], '
            f'"syncs": [...], "alerts": [...]}}, not {json_type(document)}.'
        )
        return sections
    for key in document:
        if key not in SECTIONS:
            errors.append(
                f"document: unknown key {shown_text(key)} (expected {', '.join(SECTIONS)})."
            )
    for name in SECTIONS:
        value = document.get(name)
        if value is None:
            continue
        if not isinstance(value, list):
            errors.append(f"{name}: must be a list of objects, not {json_type(value)}.")
            continue
        sections[name] = list(value)  # a copy: refused entries are replaced in it
    return sections

