"""django-q2 tasks: take ids, call services, return a small dict, safe to run twice."""

from __future__ import annotations

from typing import Any

from sources.models import ImportRun
from sources.services import import_run_process, import_scheduled_fire


def execute_import_run(run_id: int) -> dict[str, Any]:
    """Claim and carry out a queued import run; a re-delivered task finds it claimed."""
    try:
        run = import_run_process(run_id=run_id)
    except ImportRun.DoesNotExist:
        return {"run_id": run_id, "status": "missing"}
    return {"run_id": run.pk, "status": run.status}


def run_scheduled_import(import_id: int) -> dict[str, Any]:
    """An import's schedule fired: run it now (unless a sync already ran it for this slot)."""
    run = import_scheduled_fire(import_id=import_id)
    if run is None:
        return {"import_id": import_id, "status": "not_due"}
    return {"import_id": import_id, "run_id": run.pk, "status": run.status}
