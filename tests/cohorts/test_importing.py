"""Profile import: CSV typing, JSON Lines, merging, bad rows, re-import."""

from __future__ import annotations

import io
import json

import pytest

from cohorts.importing import (
    ImportFileError,
    cohort_static_members_replace,
    distinct_ids_from_lines,
    profiles_import,
)
from cohorts.models import Profile, StaticMembership
from tests.factories import ProfileFactory, StaticCohortFactory, StaticMembershipFactory


def run(text: str | bytes, **kwargs):
    data = text.encode() if isinstance(text, str) else text
    return profiles_import(source=io.BytesIO(data), **kwargs)


def props(distinct_id: str) -> dict:
    return Profile.objects.get(distinct_id=distinct_id).properties


def jsonl(*records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


@pytest.mark.django_db
class TestCsv:
    def test_creates_profiles_with_conservatively_typed_properties(self):
        report = run(
            "distinct_id,$email,age,score,trial,zip,phone,plan\n"
            "u1,ana@example.com,34,4.5,true,02134,+15551234567,pro\n"
            "u2,bo@example.com,,-3,FALSE,10001,1234567890123456,\n",
            file_format="csv",
        )
        assert (report.created, report.updated, report.rejected) == (2, 0, 0)
        assert props("u1") == {
            "$email": "ana@example.com",
            "age": 34,
            "score": 4.5,
            "trial": True,
            "zip": "02134",
            "phone": "+15551234567",
            "plan": "pro",
        }
        # Empty cells are "not provided"; 16-digit numbers stay text so nothing is rounded.
        assert props("u2") == {
            "$email": "bo@example.com",
            "score": -3,
            "trial": False,
            "zip": 10001,
            "phone": "1234567890123456",
        }

    def test_merges_into_existing_properties(self):
        ProfileFactory(distinct_id="u1", properties={"plan": "free", "country": "US"})
        report = run("distinct_id,plan,seats\nu1,pro,3\n")
        assert (report.created, report.updated) == (0, 1)
        assert props("u1") == {"plan": "pro", "country": "US", "seats": 3}

    def test_empty_cell_keeps_the_stored_value(self):
        ProfileFactory(distinct_id="u1", properties={"plan": "pro"})
        report = run("distinct_id,plan,seats\nu1,,3\n")
        assert props("u1") == {"plan": "pro", "seats": 3}
        assert report.updated == 1

    def test_bad_rows_are_rejected_with_line_numbers_and_import_continues(self):
        long_id = "x" * 256
        report = run(
            "distinct_id,plan\n"
            "ok1,pro\n"
            ",free\n"
            f"{long_id},pro\n"
            "too,many,cells\n"
            '"multi\nline",pro\n'
            "ok2,free\n"
            "   ,free\n"
        )
        assert report.created == 3
        assert report.rejected == 4
        assert [(r.line, r.reason) for r in report.rejects] == [
            (3, "distinct_id is empty"),
            (4, "distinct_id is longer than 255 characters"),
            (5, "the row has 3 values but the header has 2 columns"),
            (9, "distinct_id is empty"),
        ]
        assert set(Profile.objects.values_list("distinct_id", flat=True)) == {"ok1", "multi\nline", "ok2"}

    def test_invalid_utf8_row_is_rejected_alone(self):
        data = b"distinct_id,name\nu1,Ana\nu2,\xff\xfe\nu3,Z\xc3\xa9\n"
        report = run(data)
        assert report.created == 2
        assert [(r.line, r.reason) for r in report.rejects] == [(3, "the row is not valid UTF-8 text")]
        assert props("u3") == {"name": "Zé"}

    def test_bom_and_crlf_and_blank_lines(self):
        report = run(b"\xef\xbb\xbfdistinct_id,plan\r\nu1,pro\r\n\r\nu2,free\r\n")
        assert report.created == 2
        assert props("u1") == {"plan": "pro"}

    def test_header_without_distinct_id_is_a_file_error(self):
        with pytest.raises(ImportFileError, match="no distinct_id column"):
            run("id,plan\n1,pro\n")
        with pytest.raises(ImportFileError, match="more than once"):
            run("distinct_id,plan,plan\n1,pro,free\n")
        with pytest.raises(ImportFileError, match="empty"):
            run("", file_format="csv")

    def test_same_id_twice_in_a_file_applies_rows_in_order(self):
        report = run("distinct_id,plan,seats\nu1,free,1\nu1,pro,\n")
        assert props("u1") == {"plan": "pro", "seats": 1}
        assert (report.created, report.updated) == (1, 1)


@pytest.mark.django_db
class TestJsonLines:
    def test_creates_and_merges(self):
        ProfileFactory(distinct_id="u1", properties={"plan": "free", "address": {"city": "Oslo", "zip": "0150"}})
        report = run(
            jsonl(
                {"distinct_id": "u1", "properties": {"plan": "pro", "address": {"city": "Bergen"}}},
                {"distinct_id": "u2", "properties": {"tags": ["a", "b"], "vip": True, "n": 1.5}},
                {"distinct_id": 42},
            )
        )
        assert (report.created, report.updated, report.rejected) == (2, 1, 0)
        # Top-level merge: a nested object given in the file replaces the stored one.
        assert props("u1") == {"plan": "pro", "address": {"city": "Bergen"}}
        assert props("u2") == {"tags": ["a", "b"], "vip": True, "n": 1.5}
        assert props("42") == {}

    def test_null_removes_a_property(self):
        ProfileFactory(distinct_id="u1", properties={"plan": "pro", "trial_ends": "2024-01-01"})
        report = run(jsonl({"distinct_id": "u1", "properties": {"trial_ends": None}}))
        assert props("u1") == {"plan": "pro"}
        assert report.updated == 1
        report = run(jsonl({"distinct_id": "u1", "properties": {"trial_ends": None}}))
        assert (report.updated, report.unchanged) == (0, 1)

    def test_bad_lines_are_rejected_with_line_numbers(self):
        lines = [
            json.dumps({"distinct_id": "ok", "properties": {}}),
            "{not json",
            json.dumps(["a"]),
            json.dumps({"properties": {"a": 1}}),
            json.dumps({"distinct_id": "x", "properties": ["a"]}),
            json.dumps({"distinct_id": "x", "$email": "a@b"}),
            '{"distinct_id": "x", "properties": {"n": NaN}}',
            json.dumps({"distinct_id": "x" * 300}),
            json.dumps({"distinct_id": "nul", "properties": {"a": "\u0000"}}),
            "",
            json.dumps({"distinct_id": True}),
        ]
        report = run("\n".join(lines) + "\n", file_format="jsonl")
        assert report.created == 1
        assert report.rejected == 9
        reasons = {r.line: r.reason for r in report.rejects}
        assert reasons[2].startswith("the line is not valid JSON")
        assert reasons[3].startswith("the line must be a JSON object")
        assert reasons[4] == "distinct_id is missing or is not text"
        assert reasons[5] == '"properties" must be a JSON object'
        assert reasons[6].startswith("unexpected key '$email'")
        assert reasons[7] == (
            "property n: is NaN, which is not a number JSON can store; use null or leave it out"
        )
        assert reasons[8] == "distinct_id is longer than 255 characters"
        assert reasons[9] == "property a: contains a NUL character (\\u0000); remove it"
        assert reasons[11] == "distinct_id is missing or is not text"


@pytest.mark.django_db
class TestBatchesAndReimport:
    def test_reimport_is_idempotent(self, tmp_path):
        path = tmp_path / "profiles.csv"
        path.write_text("distinct_id,plan\n" + "".join(f"u{i},pro\n" for i in range(23)))
        first = profiles_import(source=path, batch_size=5)
        snapshot = dict(Profile.objects.values_list("distinct_id", "properties"))
        second = profiles_import(source=str(path), batch_size=5)
        assert (first.created, first.updated, first.unchanged) == (23, 0, 0)
        assert (second.created, second.updated, second.unchanged) == (0, 0, 23)
        assert dict(Profile.objects.values_list("distinct_id", "properties")) == snapshot
        assert Profile.objects.count() == 23

    def test_progress_is_reported_per_batch(self):
        seen = []
        run("distinct_id\n" + "".join(f"u{i}\n" for i in range(12)), batch_size=5,
            on_progress=lambda r: seen.append(r.rows_read))
        assert seen == [5, 10, 12]

    def test_mixed_batch_counts_created_updated_unchanged(self):
        ProfileFactory(distinct_id="same", properties={"plan": "pro"})
        ProfileFactory(distinct_id="changes", properties={"plan": "free"})
        report = run("distinct_id,plan\nsame,pro\nchanges,pro\nnew,pro\n", batch_size=2)
        assert (report.created, report.updated, report.unchanged) == (1, 1, 1)
        assert report.summary() == (
            "3 rows read: 1 profile created, 1 updated, 1 unchanged, 0 rejected."
        )

    def test_only_first_thousand_rejects_are_detailed_but_all_counted(self):
        report = run("distinct_id,plan\n" + ",x\n" * 1200 + "ok,x\n")
        assert report.rejected == 1200
        assert len(report.rejects) == 1000
        assert report.created == 1


@pytest.mark.django_db
def test_format_is_inferred_from_name_then_content(tmp_path):
    path = tmp_path / "people.ndjson"
    path.write_text(jsonl({"distinct_id": "a", "properties": {"x": 1}}))
    assert profiles_import(source=path).file_format == "jsonl"
    untitled = io.BytesIO(b'\n{"distinct_id": "b"}\n')
    report = profiles_import(source=untitled)
    assert (report.file_format, report.created) == ("jsonl", 1)
    assert run("distinct_id\nc\n").file_format == "csv"


def test_unreadable_path_is_a_file_error(tmp_path):
    with pytest.raises(ImportFileError, match="Cannot read"):
        profiles_import(source=tmp_path / "missing.csv")


@pytest.mark.django_db
def test_static_members_are_replaced():
    cohort = StaticCohortFactory()
    StaticMembershipFactory(cohort=cohort, distinct_id="old")
    count = cohort_static_members_replace(
        cohort=cohort, distinct_ids=distinct_ids_from_lines([b"distinct_id\n", b"a\n", b" b \n", b"a\n", b"\n"])
    )
    assert count == 2
    assert set(StaticMembership.objects.filter(cohort=cohort).values_list("distinct_id", flat=True)) == {"a", "b"}


@pytest.mark.django_db
def test_static_members_replace_refuses_overlong_ids_and_keeps_the_list():
    cohort = StaticCohortFactory()
    StaticMembershipFactory(cohort=cohort, distinct_id="keep")
    with pytest.raises(ValueError, match="Line 2: distinct id is longer than 255"):
        cohort_static_members_replace(cohort=cohort, distinct_ids=["a", "x" * 300])
    assert list(StaticMembership.objects.filter(cohort=cohort).values_list("distinct_id", flat=True)) == ["keep"]


def test_reading_ahead_keeps_order_raises_the_readers_error_and_stops_with_the_writer():
    import itertools

    from cohorts.importing import _read_ahead

    assert list(_read_ahead(iter(range(50)))) == list(range(50))

    def failing():
        yield 1
        raise ValueError("line 7 is not UTF-8")

    with pytest.raises(ValueError, match="line 7"):
        list(_read_ahead(failing()))

    produced = itertools.count()
    reader = _read_ahead(iter(lambda: next(produced), None), depth=2)
    assert next(reader) == 0
    reader.close()  # the writer stopped: the reading thread stops too, a few items ahead
    assert next(produced) < 10
