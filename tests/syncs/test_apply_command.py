"""`manage.py apply PATH.json`: output, exit code, dry run, unreadable input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from destinations.models import Destination
from syncs.models import Sync

pytestmark = pytest.mark.django_db

DOCUMENT = {
    "destinations": [
        {
            "name": "Marketo",
            "kind": "marketo",
            "base_url": "https://123-ABC-456.mktorest.com",
            "client_id": "mkto-client",
            "client_secret": {"env": "APPLY_TEST_MARKETO_SECRET"},
        }
    ],
    "cohorts": [{"name": "Pro users", "rules": {"all": [{"property": "plan", "op": "eq", "value": "pro"}]}}],
    "syncs": [
        {"name": "Pro → Marketo", "cohort": "Pro users", "destination": "Marketo", "field": "proUser"}
    ],
}


@pytest.fixture(autouse=True)
def marketo_secret(monkeypatch):
    monkeypatch.setenv("APPLY_TEST_MARKETO_SECRET", "very-secret-value")


@pytest.fixture(autouse=True)
def no_schedules(monkeypatch):
    # Schedules are the engine's business; here only the command's behaviour matters.
    monkeypatch.setattr("syncs.services.sync_schedule_update", lambda *, sync: None)


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "cohortsync.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("apply", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_apply_prints_one_line_per_entry_and_totals(tmp_path):
    path = write(tmp_path, DOCUMENT)

    out, _ = run(str(path))

    assert out.splitlines() == [
        'destination "Marketo": created',
        'cohort "Pro users": created',
        'sync "Pro → Marketo": created',
        "3 created, 0 updated, 0 unchanged.",
    ]
    assert Destination.objects.get(name="Marketo").client_secret == "very-secret-value"
    assert "very-secret-value" not in out

    again, _ = run(str(path))
    assert again.splitlines()[-1] == "0 created, 0 updated, 3 unchanged."


def test_errors_go_to_stderr_with_exit_code_1_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.delenv("APPLY_TEST_MARKETO_SECRET")
    document = json.loads(json.dumps(DOCUMENT))
    document["syncs"][0]["mode"] = "weekly"
    path = write(tmp_path, document)

    with pytest.raises(CommandError) as excinfo:
        run(str(path))

    assert excinfo.value.returncode == 1
    assert not Destination.objects.exists() and not Sync.objects.exists()
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("apply", str(path), stdout=io.StringIO(), stderr=err)
    assert err.getvalue().splitlines() == [
        'destinations[0] "Marketo": client_secret: environment variable '
        "APPLY_TEST_MARKETO_SECRET is not set (or empty). Set it before running apply.",
        'syncs[0] "Pro → Marketo": mode: must be one of one_time, dynamic, not \'weekly\'.',
        "Nothing was written: 2 errors.",
    ]


def test_dry_run_shows_changes_without_writing(tmp_path):
    path = write(tmp_path, DOCUMENT)

    out, _ = run(str(path), "--dry-run")

    assert 'sync "Pro → Marketo": would be created' in out
    assert "Dry run, nothing was written: 3 created" in out
    assert not Destination.objects.exists()


def test_invalid_json_names_the_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{\n  "cohorts": [\n    {"name": "x",}\n  ]\n}', encoding="utf-8")

    with pytest.raises(CommandError, match=r"is not valid JSON: .* at line 3") as excinfo:
        run(str(path))
    assert excinfo.value.returncode == 1


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(CommandError, match="Cannot read .*missing.json"):
        run(str(tmp_path / "missing.json"))


def test_document_can_come_from_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(DOCUMENT)))

    out, _ = run("-")

    assert out.splitlines()[-1] == "3 created, 0 updated, 0 unchanged."


def test_the_demo_example_is_a_valid_document(sandbox):
    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "demo.json"
    document = json.loads(example.read_text(encoding="utf-8"))
    # The example points at the sandbox on 127.0.0.1, which the test settings allow; here at
    # the test's own, which apply asks whether the static lists it names exist.
    from destinations.kinds import kind_spec
    from syncs.config_as_code import config_apply

    for destination in document["destinations"]:
        emulator = kind_spec(destination["kind"]).sandbox
        destination[emulator.url_setting] = f"{sandbox.url}{emulator.url_suffix}"

    report = config_apply(
        document=document,
        environ={"COHORTSYNC_DEMO_CLIENT_SECRET": "sandbox-client-secret"},
        dry_run=True,
    )

    assert report.ok, report.errors
    assert report.totals["created"] == sum(len(entries) for entries in document.values())
