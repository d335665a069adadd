"""`manage.py import_profiles`: report on stdout, progress on stderr, exit codes."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from cohorts.models import Profile

pytestmark = pytest.mark.django_db


def run_command(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("import_profiles", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_imports_csv_and_reports_rejects_with_line_numbers(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("distinct_id,plan\nu1,pro\n,free\nu2,team\n")
    out, err = run_command(str(path), "--batch-size", "1")
    assert "3 rows read: 2 profiles created, 0 updated, 0 unchanged, 1 rejected." in out
    assert "  line 3: distinct_id is empty" in out
    assert "rows read (" in err
    assert Profile.objects.get(distinct_id="u2").properties == {"plan": "team"}


def test_format_flag_overrides_the_file_name(tmp_path):
    path = tmp_path / "export.txt"
    path.write_text(json.dumps({"distinct_id": "j1", "properties": {"n": 1}}) + "\n")
    out, _ = run_command(str(path), "--format", "jsonl")
    assert "1 row read: 1 profile created" in out and "(jsonl" in out
    assert Profile.objects.get(distinct_id="j1").properties == {"n": 1}


def test_unreadable_file_fails(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        run_command(str(tmp_path / "missing.csv"))


def test_file_without_distinct_id_column_fails(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("email\na@b.c\n")
    with pytest.raises(CommandError, match="no distinct_id column"):
        run_command(str(path))


def test_every_row_rejected_fails_after_reporting(tmp_path):
    path = tmp_path / "people.jsonl"
    path.write_text("{oops\n[]\n")
    with pytest.raises(CommandError, match="Every row was rejected"):
        run_command(str(path))
    assert not Profile.objects.exists()


def test_empty_file_fails(tmp_path):
    path = tmp_path / "people.jsonl"
    path.write_text("\n")
    with pytest.raises(CommandError, match="contains no profiles"):
        run_command(str(path))


def test_bad_batch_size_fails(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("distinct_id\nu1\n")
    with pytest.raises(CommandError, match="--batch-size must be at least 1"):
        run_command(str(path), "--batch-size", "0")
