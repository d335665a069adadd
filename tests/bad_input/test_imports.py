"""Bad rows in profile imports: each is rejected with its line and a specific reason, and
every valid row of the file is still imported (profiles_import, the command, the admin)."""

from __future__ import annotations

import csv
import html
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from cohorts.importing import ImportFileError, profiles_import
from cohorts.models import Profile
from tests.bad_input.bad_values import (
    BAD_VALUE_IDS,
    BAD_VALUES,
    NAN,
    NUL,
    TOO_DEEP,
    TOO_DEEP_TO_READ,
    TOO_DEEP_TO_READ_PROBLEM,
    infinity,
    nested,
    surrogate,
)
from tests.factories import ProfileFactory

pytestmark = pytest.mark.django_db


def run(text: str | bytes, **kwargs):
    data = text.encode() if isinstance(text, str) else text
    return profiles_import(source=io.BytesIO(data), **kwargs)


def valid_line(distinct_id: str) -> str:
    return json.dumps({"distinct_id": distinct_id, "properties": {"plan": "pro", "n": 1}})


def jsonl_around(bad_line: str, *, before: int = 3, after: int = 3) -> tuple[str, int]:
    """A file with valid rows v0.. around the bad line; returns the text and its line number."""
    lines = [valid_line(f"v{i}") for i in range(before)]
    lines.append(bad_line)
    lines += [valid_line(f"v{i}") for i in range(before, before + after)]
    return "\n".join(lines) + "\n", before + 1


def assert_valid_rows_imported(count: int) -> None:
    stored = dict(Profile.objects.values_list("distinct_id", "properties"))
    assert stored == {f"v{i}": {"plan": "pro", "n": 1} for i in range(count)}


def rejects(report) -> list[tuple[int, str]]:
    return [(r.line, r.reason) for r in report.rejects]


# --- JSON Lines: a bad value anywhere in the properties ---------------------------------------


@pytest.mark.parametrize("bad", BAD_VALUES, ids=BAD_VALUE_IDS)
def test_jsonl_bad_property_value_rejects_only_its_line(bad):
    text, line = jsonl_around(f'{{"distinct_id": "bad", "properties": {{"ok": 1, "p": {bad.json}}}}}')

    report = run(text, file_format="jsonl")

    assert rejects(report) == [(line, f"property {bad.message('p')}")]
    assert (report.created, report.rejected) == (6, 1)
    assert_valid_rows_imported(6)


@pytest.mark.parametrize(
    "properties, reason",
    [
        ('{"a\\u0000b": 1}', f'property ["a\\u0000b"]: the key {NUL}'),
        ('{"\\ud83d": 1}', f'property ["\\ud83d"]: the key {surrogate("d83d")}'),
        ('{"address": {"city": "Oslo", "zip\\udc00": "0150"}}',
         f'property address["zip\\udc00"]: the key {surrogate("dc00")}'),
    ],
    ids=["nul-in-property-name", "surrogate-in-property-name", "surrogate-in-nested-key"],
)
def test_jsonl_bad_property_name_rejects_only_its_line(properties, reason):
    text, line = jsonl_around(f'{{"distinct_id": "bad", "properties": {properties}}}')

    report = run(text, file_format="jsonl")

    assert rejects(report) == [(line, reason)]
    assert_valid_rows_imported(6)


@pytest.mark.parametrize(
    "distinct_id, reason",
    [
        ('"u\\u0000"', f"distinct_id {NUL}"),
        ('"\\ud800"', f"distinct_id {surrogate('d800')}"),
        ('"user-\\udfff"', f"distinct_id {surrogate('dfff')}"),
        ("NaN", "distinct_id is missing or is not text"),
        ("1e400", "distinct_id is missing or is not text"),
    ],
    ids=["nul", "lone-surrogate", "trailing-lone-surrogate", "nan", "1e400"],
)
def test_jsonl_bad_distinct_id_rejects_only_its_line(distinct_id, reason):
    text, line = jsonl_around(f'{{"distinct_id": {distinct_id}, "properties": {{"plan": "x"}}}}')

    report = run(text, file_format="jsonl")

    assert rejects(report) == [(line, reason)]
    assert_valid_rows_imported(6)


@pytest.mark.parametrize("levels", [1000, 100_000], ids=["1000-deep", "100000-deep"])
def test_jsonl_line_too_deep_to_parse_is_rejected_not_a_recursion_error(levels):
    text, line = jsonl_around(
        f'{{"distinct_id": "bad", "properties": {{"p": {nested(levels)}}}}}'
    )

    report = run(text, file_format="jsonl")

    assert rejects(report) == [(line, f"the line {TOO_DEEP_TO_READ_PROBLEM}")]
    assert_valid_rows_imported(6)


def test_jsonl_properties_at_the_depth_limit_are_imported():
    # The properties object is level 1, so a property may hold 31 more levels.
    deepest = nested(31)
    text, _ = jsonl_around(f'{{"distinct_id": "deep", "properties": {{"p": {deepest}}}}}')

    report = run(text, file_format="jsonl")

    assert report.rejected == 0
    assert Profile.objects.get(distinct_id="deep").properties == {"p": json.loads(deepest)}
    one_more, line = jsonl_around(f'{{"distinct_id": "deeper", "properties": {{"p": {nested(32)}}}}}')
    assert rejects(run(one_more, file_format="jsonl")) == [(line, f"property p: {TOO_DEEP}")]


def test_jsonl_backslash_text_that_looks_like_an_escape_is_kept():
    # Not a NUL: the text is a backslash followed by "u0000" (the old check matched it).
    text, _ = jsonl_around(r'{"distinct_id": "path", "properties": {"p": "C:\\u0000\\dir"}}')

    report = run(text, file_format="jsonl")

    assert report.rejected == 0
    assert Profile.objects.get(distinct_id="path").properties == {"p": "C:\\u0000\\dir"}


def test_bad_row_leaves_the_stored_profile_untouched():
    ProfileFactory(distinct_id="bad", properties={"plan": "free", "seats": 2})
    text, line = jsonl_around('{"distinct_id": "bad", "properties": {"plan": "pro", "seats": NaN}}')

    report = run(text, file_format="jsonl")

    assert rejects(report) == [(line, f"property seats: {NAN}")]
    assert Profile.objects.get(distinct_id="bad").properties == {"plan": "free", "seats": 2}


@pytest.mark.parametrize(
    "bad_properties, reason",
    [
        ('{"score": 1e400}', f"property score: {infinity()}"),
        ('{"name": "\\ud800"}', f"property name: {surrogate('d800')}"),
        ('{"\\ud800": 1}', f'property ["\\ud800"]: the key {surrogate("d800")}'),
        (f'{{"p": {TOO_DEEP_TO_READ}}}', None),
    ],
    ids=["1e400", "surrogate-value", "surrogate-key", "1000-deep"],
)
def test_bad_row_in_the_second_batch_of_a_large_file_loses_no_valid_row(bad_properties, reason):
    """The reproduction: 1e400 on row 5,001 stopped the import after 5,000 of 11,999 rows."""
    lines = [valid_line(f"v{i}") for i in range(11_999)]
    lines.insert(5_000, f'{{"distinct_id": "bad", "properties": {bad_properties}}}')

    report = run("\n".join(lines) + "\n", file_format="jsonl")

    assert rejects(report) == [(5_001, reason or f"the line {TOO_DEEP_TO_READ_PROBLEM}")]
    assert (report.created, report.rejected) == (11_999, 1)
    assert Profile.objects.count() == 11_999
    assert not Profile.objects.filter(distinct_id="bad").exists()


def test_a_row_the_database_still_refuses_is_rejected_alone(monkeypatch):
    """Belt and braces: were a value to slip past the check, the database's refusal costs
    that row only, found by halving the batch, never the import."""
    monkeypatch.setattr("cohorts.profile_rows.json_value_check", lambda *args, **kwargs: None)
    text, line = jsonl_around('{"distinct_id": "bad", "properties": {"p": NaN}}', before=6, after=5)

    report = run(text, file_format="jsonl", batch_size=4)

    assert [r.line for r in report.rejects] == [line]
    assert report.rejects[0].reason.startswith("the database refused the row (")
    assert (report.created, report.rejected) == (11, 1)
    assert_valid_rows_imported(11)


# --- CSV: runaway quotes and bad cells ---------------------------------------------------


def csv_text(*rows: str) -> str:
    return "distinct_id,name,plan\n" + "".join(f"{row}\n" for row in rows)


def test_csv_quote_never_closed_is_reported_and_swallowed_rows_are_imported():
    text = csv_text('v0,Ana,pro', 'bad,"Dwayne The Rock,pro', 'v1,Bo,pro', 'v2,Cy,pro', 'v3,Di,pro')

    report = run(text, file_format="csv")

    assert rejects(report) == [
        (3, "a quoted value opened on line 3 is never closed: it took in lines 4-6, which were "
            "read again as rows of their own; fix or remove the stray quote.")
    ]
    assert (report.created, report.rejected) == (4, 1)
    assert dict(Profile.objects.values_list("distinct_id", "properties")) == {
        f"v{i}": {"name": name, "plan": "pro"} for i, name in enumerate(["Ana", "Bo", "Cy", "Di"])
    }


def test_csv_quote_opened_on_the_last_line_is_reported():
    report = run(csv_text("v0,Ana,pro", 'bad,"Dwayne,pro'), file_format="csv")

    assert rejects(report) == [
        (3, "a quoted value opened on line 3 is never closed: the file ends inside it; fix or "
            "remove the stray quote.")
    ]
    assert list(Profile.objects.values_list("distinct_id", flat=True)) == ["v0"]


def test_csv_quote_opened_inside_a_multi_line_row_names_the_line_it_opened_on():
    # Lines 3-4 are one legitimate row (a quoted value with a line break); the stray quote
    # opens on line 4, so only line 5 onwards was taken in.
    text = csv_text('v0,Ana,pro', 'bad,"two\nlines","y', 'v1,Bo,pro')

    report = run(text, file_format="csv")

    assert rejects(report) == [
        (3, "a quoted value opened on line 4 is never closed: it took in line 5, which was "
            "read again as a row of its own; fix or remove the stray quote.")
    ]
    assert sorted(Profile.objects.values_list("distinct_id", flat=True)) == ["v0", "v1"]


def test_csv_quote_open_past_the_field_size_limit_loses_no_later_row():
    limit = csv.field_size_limit()
    rows = [f"v{i},{'x' * 90},pro" for i in range(2 * limit // 100)]
    text = csv_text("v-first,Ana,pro", 'bad,"stray,pro', *rows)

    report = run(text, file_format="csv")

    assert len(report.rejects) == 1
    line, reason = rejects(report)[0]
    assert line == 3
    assert reason.startswith("a quoted value opened on line 3 is still open on line ")
    assert f"(longer than {limit:,} characters): it took in lines 4-" in reason
    assert report.created == len(rows) + 1
    assert Profile.objects.filter(distinct_id__startswith="v").count() == len(rows) + 1


def test_csv_legitimate_multi_line_values_are_still_one_value():
    report = run(csv_text('v0,"Ana\nMaria",pro', 'v1,"say ""hi""",pro'), file_format="csv")

    assert report.rejected == 0
    assert Profile.objects.get(distinct_id="v0").properties == {"name": "Ana\nMaria", "plan": "pro"}
    assert Profile.objects.get(distinct_id="v1").properties == {"name": 'say "hi"', "plan": "pro"}


def test_csv_header_with_a_quote_never_closed_is_a_file_error():
    with pytest.raises(ImportFileError) as raised:
        run('distinct_id,"name\nv0,Ana\nv1,Bo\n', file_format="csv")
    assert str(raised.value) == (
        "The CSV header row opens a quoted value on line 1 that is never closed; fix or remove "
        "the stray quote."
    )
    assert not Profile.objects.exists()


@pytest.mark.parametrize(
    "row, reason",
    [
        ("bad,An\x00a,pro", f"property name: {NUL}"),
        ("b\x00d,Ana,pro", f"distinct_id {NUL}"),
    ],
    ids=["nul-in-a-cell", "nul-in-the-distinct-id"],
)
def test_csv_nul_in_a_cell_rejects_only_its_row(row, reason):
    report = run(csv_text("v0,Ana,pro", row, "v1,Bo,pro"), file_format="csv")

    assert rejects(report) == [(3, reason)]
    assert sorted(Profile.objects.values_list("distinct_id", flat=True)) == ["v0", "v1"]


def test_csv_surrogate_bytes_are_not_utf8_and_reject_only_their_row():
    # A surrogate encoded as if it were a character (CESU-8): not valid UTF-8.
    data = b"distinct_id,name\nv0,Ana\nbad,\xed\xa0\x80\nv1,Bo\n"

    report = run(data, file_format="csv")

    assert rejects(report) == [(3, "the row is not valid UTF-8 text")]
    assert sorted(Profile.objects.values_list("distinct_id", flat=True)) == ["v0", "v1"]


# --- The command and the admin upload answer with the reasons, never a traceback ----------


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("surrogate.jsonl", '{"distinct_id": "bad", "properties": {"p": "\\ud800"}}',
         f"  line 4: property p: {surrogate('d800')}"),
        ("overflow.jsonl", '{"distinct_id": "bad", "properties": {"p": 1e400}}',
         f"  line 4: property p: {infinity()}"),
        ("deep.jsonl", f'{{"distinct_id": "bad", "properties": {{"p": {TOO_DEEP_TO_READ}}}}}',
         f"  line 4: the line {TOO_DEEP_TO_READ_PROBLEM}"),
    ],
    ids=["lone-surrogate", "1e400", "1000-deep"],
)
def test_import_command_prints_the_rejected_line_and_imports_the_rest(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(jsonl_around(content)[0], encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()

    call_command("import_profiles", str(path), stdout=out, stderr=err)

    assert expected in out.getvalue().splitlines()
    assert "7 rows read: 6 profiles created, 0 updated, 0 unchanged, 1 rejected." in out.getvalue()
    assert "Traceback" not in err.getvalue()
    assert_valid_rows_imported(6)


def test_import_command_reports_a_runaway_quote(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(csv_text("v0,Ana,pro", 'bad,"Dwayne,pro', "v1,Bo,pro"), encoding="utf-8")
    out = io.StringIO()

    call_command("import_profiles", str(path), stdout=out, stderr=io.StringIO())

    assert (
        "  line 3: a quoted value opened on line 3 is never closed: it took in line 4, which "
        "was read again as a row of its own; fix or remove the stray quote."
    ) in out.getvalue().splitlines()
    assert sorted(Profile.objects.values_list("distinct_id", flat=True)) == ["v0", "v1"]


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("surrogate.jsonl", jsonl_around('{"distinct_id": "\\ud800", "properties": {}}')[0],
         f"distinct_id {surrogate('d800')}"),
        ("nan.jsonl", jsonl_around('{"distinct_id": "bad", "properties": {"p": NaN}}')[0],
         f"property p: {NAN}"),
        ("overflow.jsonl", jsonl_around('{"distinct_id": "bad", "properties": {"p": 1e400}}')[0],
         f"property p: {infinity()}"),
        ("deep.jsonl", jsonl_around(f'{{"distinct_id": "bad", "properties": {TOO_DEEP_TO_READ}}}')[0],
         f"the line {TOO_DEEP_TO_READ_PROBLEM}"),
        ("runaway.csv", "distinct_id,plan,n\nv0,pro,1\nv1,pro,1\nv2,pro,1\nbad,\"pro,1\n"
         + "".join(f"v{i},pro,1\n" for i in range(3, 6)),
         "a quoted value opened on line 5 is never closed: it took in lines 6-8, which were "
         "read again as rows of their own; fix or remove the stray quote."),
    ],
    ids=["lone-surrogate-id", "nan", "1e400", "1000-deep", "runaway-quote"],
)
def test_admin_upload_lists_the_rejected_line_and_imports_the_rest(admin_client, name, content, reason):
    upload = SimpleUploadedFile(name, content.encode("utf-8"))

    response = admin_client.post(reverse("admin:cohorts_profile_import"), {"file": upload})

    assert response.status_code == 200
    page = response.content.decode()
    assert "7 rows read: 6 profiles created, 0 updated, 0 unchanged, 1 rejected." in page
    assert f"<td>{html.escape(reason)}</td>" in page
    assert_valid_rows_imported(6)
