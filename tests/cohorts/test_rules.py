"""Every op against a zoo of JSON types; runs on whichever database is configured."""

from __future__ import annotations

import datetime as dt

import pytest

from cohorts.models import Profile
from cohorts.rules import OPS, RuleError, rules_problems, rules_to_q, validate_rules
from tests.factories import ProfileFactory

# One property "v" holding every JSON type a marketer's data can contain.
ZOO = {
    "text_pro": {"v": "pro", "country": "US"},
    "text_Pro": {"v": "Pro", "country": "FR"},
    "text_propeller": {"v": "propeller"},
    "text_5": {"v": "5"},
    "int_5": {"v": 5, "country": "US"},
    "float_5": {"v": 5.0},
    "float_5_5": {"v": 5.5},
    "int_10": {"v": 10, "country": "FR"},
    "int_1": {"v": 1},
    "int_0": {"v": 0},
    "true": {"v": True},
    "false": {"v": False},
    "text_true": {"v": "true"},
    "null": {"v": None},
    "empty": {"v": ""},
    "array": {"v": ["pro", 5, True]},
    "object": {"v": {"pro": 1}},
    "missing": {"country": "US"},
    "date": {"v": "2024-01-31"},
    "datetime": {"v": "2024-01-31T23:59:59Z"},
    "datetime_feb": {"v": "2024-02-01T00:00:00Z"},
}
ALL = set(ZOO)
NOW = dt.datetime(2024, 2, 3, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def zoo(db):
    for name, properties in ZOO.items():
        ProfileFactory(distinct_id=name, properties=properties)


def matching(rules) -> set[str]:
    return set(
        Profile.objects.filter(rules_to_q(rules, now=NOW)).values_list("distinct_id", flat=True)
    )


def cond(op, value=..., prop="v"):
    node = {"property": prop, "op": op}
    if value is not ...:
        node["value"] = value
    return {"all": [node]}


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("eq", "pro", {"text_pro"}),
        # Numbers compare numerically, and numeric text matches its number twin.
        ("eq", 5, {"int_5", "float_5", "text_5"}),
        ("eq", "5", {"int_5", "float_5", "text_5"}),
        ("eq", 5.5, {"float_5_5"}),
        # true is not 1 and false is not 0, although SQLite stores them that way.
        ("eq", True, {"true", "text_true"}),
        ("eq", 1, {"int_1"}),
        ("eq", False, {"false"}),
        ("eq", 0, {"int_0"}),
        ("eq", "", {"empty"}),
        # A missing, null, array or object property is "not equal" to anything scalar.
        ("neq", "pro", ALL - {"text_pro"}),
        ("neq", 5, ALL - {"int_5", "float_5", "text_5"}),
        ("in", ["pro", 10], {"text_pro", "int_10"}),
        ("in", [True, "Pro"], {"true", "text_true", "text_Pro"}),
        ("not_in", ["pro", 10], ALL - {"text_pro", "int_10"}),
        # Substring of text (case-sensitive) or element of an array; never keys of objects.
        ("contains", "pro", {"text_pro", "text_propeller", "array"}),
        ("contains", "ell", {"text_propeller"}),
        ("contains", 5, {"array"}),
        ("contains", True, {"array"}),
        ("gt", 5, {"float_5_5", "int_10"}),
        ("gte", 5, {"int_5", "float_5", "float_5_5", "int_10"}),
        # Booleans are not numbers, so true/false never satisfy lt.
        ("lt", 5, {"int_1", "int_0"}),
        ("lte", 1, {"int_1", "int_0"}),
        # A date value compares the date part, so the whole last day is included.
        ("lte", "2024-01-31", {"date", "datetime"}),
        ("lt", "2024-01-31", set()),
        ("gt", "2024-01-31", {"datetime_feb"}),
        ("gte", "2024-02-01", {"datetime_feb"}),
        # Other text compares by code point: uppercase sorts before lowercase.
        ("gte", "p", {"text_pro", "text_propeller", "text_true"}),
        ("lt", "Q", {"text_Pro", "text_5", "date", "datetime", "datetime_feb", "empty"}),
        ("is_set", ..., ALL - {"null", "empty", "missing"}),
        ("is_not_set", ..., {"null", "empty", "missing"}),
        ("within_last_days", 3, {"date", "datetime", "datetime_feb"}),
        ("within_last_days", 2, {"datetime_feb"}),
        ("within_last_days", 1, set()),
        # Strictly before today minus N days; text that is not a date never matches.
        ("more_than_days_ago", 1, {"date", "datetime", "datetime_feb"}),
        ("more_than_days_ago", 2, {"date", "datetime"}),
        ("more_than_days_ago", 3, set()),
    ],
)
def test_op_matches_expected_profiles(zoo, op, value, expected):
    assert matching(cond(op, value)) == expected


def test_negated_ops_are_exact_complements(zoo):
    for positive, negative, value in [
        ("eq", "neq", "pro"),
        ("in", "not_in", [5, "x"]),
        ("is_set", "is_not_set", ...),
    ]:
        assert matching(cond(positive, value)) | matching(cond(negative, value)) == ALL
        assert not matching(cond(positive, value)) & matching(cond(negative, value))


def test_within_last_days_excludes_future_dates(db):
    ProfileFactory(distinct_id="tomorrow", properties={"seen": "2024-02-04"})
    ProfileFactory(distinct_id="today", properties={"seen": "2024-02-03T00:00:01"})
    ProfileFactory(distinct_id="not-a-date", properties={"seen": "soon"})
    assert matching(cond("within_last_days", 30, prop="seen")) == {"today"}


def test_more_than_days_ago_and_within_last_days_split_dated_profiles(db):
    for days_ago in range(0, 60):
        seen = (dt.date(2024, 2, 3) - dt.timedelta(days=days_ago)).isoformat()
        ProfileFactory(distinct_id=f"seen-{days_ago:02d}", properties={"seen": seen})
    ProfileFactory(distinct_id="never-seen", properties={})
    recent = matching(cond("within_last_days", 30, prop="seen"))
    inactive = matching(cond("more_than_days_ago", 30, prop="seen"))
    assert not recent & inactive
    assert recent | inactive == {f"seen-{d:02d}" for d in range(60)}
    assert min(inactive) == "seen-31"


def test_within_last_days_defaults_to_the_current_time(db):
    ProfileFactory(distinct_id="recent", properties={"seen": dt.date.today().isoformat()})
    ProfileFactory(distinct_id="old", properties={"seen": "2001-01-01"})
    ids = Profile.objects.filter(rules_to_q(cond("within_last_days", 7, prop="seen")))
    assert list(ids.values_list("distinct_id", flat=True)) == ["recent"]


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("eq", "text_pro", {"text_pro"}),
        ("neq", "text_pro", ALL - {"text_pro"}),
        ("in", ["int_5", "int_10", "nobody"], {"int_5", "int_10"}),
        ("not_in", ["int_5"], ALL - {"int_5"}),
        ("contains", "5", {"text_5", "int_5", "float_5", "float_5_5"}),
        ("gte", "text_", {"text_pro", "text_Pro", "text_propeller", "text_5", "text_true", "true"}),
        ("is_set", ..., ALL),
        ("is_not_set", ..., set()),
    ],
)
def test_distinct_id_property_targets_the_profile_id(zoo, op, value, expected):
    assert matching(cond(op, value, prop="$distinct_id")) == expected


def test_property_names_with_spaces_dots_and_dollars(db):
    ProfileFactory(distinct_id="a", properties={"$email": "a@x.io", "first name": "Ana", "a.b": 1})
    ProfileFactory(distinct_id="b", properties={"a": {"b": 1}})
    assert matching(cond("eq", "a@x.io", prop="$email")) == {"a"}
    assert matching(cond("eq", "Ana", prop="first name")) == {"a"}
    # "a.b" is one key, not a path into a nested object.
    assert matching(cond("eq", 1, prop="a.b")) == {"a"}


def test_nested_groups(zoo):
    rules = {
        "all": [
            {"property": "country", "op": "eq", "value": "US"},
            {"any": [{"property": "v", "op": "eq", "value": "pro"}, {"property": "v", "op": "gt", "value": 4}]},
        ]
    }
    assert matching(rules) == {"text_pro", "int_5"}
    rules = {
        "any": [
            {"all": [{"property": "country", "op": "eq", "value": "FR"}, {"property": "v", "op": "is_set"}]},
            {"all": [{"property": "v", "op": "is_not_set"}, {"property": "country", "op": "is_set"}]},
        ]
    }
    assert matching(rules) == {"text_Pro", "int_10", "missing"}


def test_empty_all_group_matches_everyone(zoo):
    assert matching({"all": []}) == ALL
    assert matching({"all": [{"all": []}]}) == ALL


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (None, "Rules must be a group"),
        ([], "Rules must be a group"),
        ({"property": "plan", "op": "eq", "value": "pro"}, "Rules must be a group"),
        ({"all": {}}, "rules: 'all' must be a list"),
        ({"any": []}, "rules: 'any' group is empty"),
        (
            {"all": [{}, {"any": [{"property": "plan", "op": "eqq", "value": 1}]}]},
            "all[0]: 'property' must be a non-empty property name",
        ),
        (
            {"all": [{"property": "p", "op": "eq", "value": 1}, {"any": [{"property": "plan", "op": "eqq", "value": 1}]}]},
            "all[1].any[0]: unknown op 'eqq' (expected one of eq, neq, in,",
        ),
        ({"all": [{"property": "p", "op": "in", "value": "pro"}]}, "all[0]: 'value' must be a non-empty list for op 'in'"),
        ({"all": [{"property": "p", "op": "not_in", "value": []}]}, "all[0]: 'value' must be a non-empty list"),
        ({"all": [{"property": "p", "op": "in", "value": [["a"]]}]}, "all[0]: op 'in' compares with text, a number or true/false"),
        ({"all": [{"property": "p", "op": "eq"}]}, "all[0]: op 'eq' needs a 'value'"),
        ({"all": [{"property": "p", "op": "eq", "value": None}]}, "use 'is_set' or 'is_not_set'"),
        ({"all": [{"property": "p", "op": "eq", "value": {"a": 1}}]}, "not a list or object"),
        ({"all": [{"property": "p", "op": "is_set", "value": True}]}, "op 'is_set' takes no 'value'"),
        ({"all": [{"property": "p", "op": "contains", "value": ""}]}, "needs a non-empty 'value'"),
        ({"all": [{"property": "p", "op": "gt", "value": True}]}, "op 'gt' needs a number or a date/text"),
        ({"all": [{"property": "p", "op": "lte", "value": "2024-02-30"}]}, "'2024-02-30' is not a valid date"),
        ({"all": [{"property": "p", "op": "within_last_days", "value": 0}]}, "within_last_days needs a positive whole number"),
        ({"all": [{"property": "p", "op": "within_last_days", "value": "7"}]}, "within_last_days needs a positive whole number"),
        ({"all": [{"property": "p", "op": "within_last_days", "value": 1.5}]}, "within_last_days needs a positive whole number"),
        ({"all": [{"property": "p", "op": "more_than_days_ago", "value": -3}]}, "more_than_days_ago needs a positive whole number"),
        ({"all": [{"property": "p", "op": "eq", "vaule": 1}]}, "all[0]: unexpected key 'vaule'"),
        ({"all": [{"property": 'say "hi"', "op": "is_set"}]}, "no double quote"),
        ({"all": ["plan = pro"]}, "all[0]: expected a condition"),
    ],
)
def test_bad_rules_name_the_condition_and_the_problem(rules, message):
    with pytest.raises(RuleError) as excinfo:
        validate_rules(rules)
    assert message in str(excinfo.value)


def test_rules_to_q_refuses_invalid_rules():
    with pytest.raises(RuleError, match="unknown op"):
        rules_to_q({"all": [{"property": "p", "op": "like", "value": "x"}]})


def test_deep_nesting_is_refused():
    rules: dict = {"all": []}
    for _ in range(12):
        rules = {"all": [rules]}
    with pytest.raises(RuleError, match="nested more than"):
        validate_rules(rules)


def test_every_problem_is_listed_in_order_with_its_path():
    rules = {
        "all": [
            {"property": "plan", "op": "eqq", "value": "pro"},
            {"property": "plan", "op": "eq", "value": "pro"},
            {"any": [{"property": "seen", "op": "within_last_days", "value": -1}, "oops"]},
            {"property": "tags", "op": "in", "value": [], "extra": 1},
        ]
    }

    assert rules_problems(rules) == [
        "all[0]: unknown op 'eqq' (expected one of " + ", ".join(OPS) + ").",
        "all[2].any[0]: within_last_days needs a positive whole number of days, got -1.",
        'all[2].any[1]: expected a condition {"property": ..., "op": ..., "value": ...} or a group '
        '{"all": [...]} / {"any": [...]}.',
        "all[3]: unexpected key 'extra' (a condition has 'property', 'op' and 'value'; a group has "
        "exactly one key, 'all' or 'any').",
    ]
    with pytest.raises(RuleError) as raised:
        validate_rules(rules)
    assert str(raised.value) == rules_problems(rules)[0]
    assert raised.value.problems == rules_problems(rules)


def test_valid_rules_have_no_problems():
    assert rules_problems({"all": []}) == []
    assert rules_problems([]) == ['Rules must be a group: a JSON object like {"all": [...]} or {"any": [...]}.']
