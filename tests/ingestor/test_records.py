from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ingestor.netwrix.records import Action, ActivityRecord, clean_xml_text, format_when, record_fields
from tests.conftest import make_record

MANDATORY = ["Who", "Action", "What", "When", "Where", "ObjectType"]


@pytest.mark.parametrize("field", MANDATORY)
def test_mandatory_fields_are_enforced(field):
    values = make_record().model_dump()
    del values[field]
    with pytest.raises(ValidationError, match=field):
        ActivityRecord(**values)


@pytest.mark.parametrize("field", ["Who", "What", "Where", "ObjectType"])
def test_mandatory_text_may_not_be_empty(field):
    with pytest.raises(ValidationError, match=field):
        make_record(**{field: ""})


@pytest.mark.parametrize("field", ["Who", "Where", "ObjectType"])
def test_nvarchar_255_limit(field):
    assert getattr(make_record(**{field: "x" * 255}), field) == "x" * 255
    with pytest.raises(ValidationError, match="at most 255"):
        make_record(**{field: "x" * 256})


def test_nested_255_limits():
    with pytest.raises(ValidationError):
        make_record(MonitoringPlan={"Name": "p" * 256})
    with pytest.raises(ValidationError):
        make_record(DetailList=[{"PropertyName": "p" * 256}])
    assert make_record(What="w" * 10_000).What == "w" * 10_000  # nvarchar(max)


def test_unknown_fields_are_rejected():
    with pytest.raises(ValidationError, match="RID"):
        ActivityRecord(**make_record().model_dump(), RID="1")


def test_action_list_is_the_published_23():
    assert len(Action) == 23
    assert Action("Add (Failed Attempt)") is Action.ADD_FAILED


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("successful logon", Action.SUCCESSFUL_LOGON),
        ("Successful logon", Action.SUCCESSFUL_LOGON),
        ("add (failed attempt)", Action.ADD_FAILED),
        ("MODIFIED", Action.MODIFIED),
        ("  session   START ", Action.SESSION_START),
    ],
)
def test_action_casing_is_normalized(given, expected):
    assert make_record(Action=given).Action is expected


@pytest.mark.parametrize("bad", ["Modify", "Login", "Deleted", ""])
def test_action_outside_the_list_is_rejected(bad):
    with pytest.raises(ValidationError, match="Action"):
        make_record(Action=bad)


def test_when_must_be_timezone_aware():
    with pytest.raises(ValidationError, match="timezone"):
        make_record(When=datetime(2026, 1, 1, 0, 0, 0))


def test_when_is_written_in_utc_with_z():
    minus_eleven = timezone(timedelta(hours=-11))
    assert format_when(datetime(2017, 2, 19, 3, 43, 49, tzinfo=minus_eleven)) == "2017-02-19T14:43:49Z"
    assert format_when(datetime(2026, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)) == "2026-01-01T00:00:00.123000Z"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("a\x00b", "a\ufffdb"),
        ("bell\x07", "bell\ufffd"),
        ("esc\x1b[0m", "esc\ufffd[0m"),
        ("tab\tcr\rlf\n", "tab\tcr\rlf\n"),
        ("lone \ud800 surrogate", "lone \ufffd surrogate"),
        ("non\ufffe\uffffchars", "non\ufffd\ufffdchars"),
        ("emoji \U0001f600 ok", "emoji \U0001f600 ok"),
    ],
)
def test_xml_illegal_characters_are_replaced(raw, clean):
    assert clean_xml_text(raw) == clean
    assert make_record(Who=raw).Who == clean
    assert make_record(DetailList=[{"PropertyName": "p", "After": raw}]).DetailList[0].After == clean


def test_records_are_immutable():
    record = make_record()
    with pytest.raises(ValidationError):
        record.Who = "other"  # type: ignore[misc]


def test_record_fields_has_one_stable_order_and_omits_absent_fields():
    minimal = make_record(Workstation=None, MonitoringPlan=None, Item=None, DetailList=[])
    assert [name for name, _ in record_fields(minimal)] == MANDATORY
    full = make_record(DataSource="Syslog", IsArchiveOnly=True, MonitoringPlan={"Name": "p", "ID": "{1}"})
    assert [name for name, _ in record_fields(full)] == [
        *MANDATORY,
        "Workstation",
        "MonitoringPlan",
        "DataSource",
        "Item",
        "IsArchiveOnly",
        "DetailList",
    ]


@settings(max_examples=500, deadline=None)
@given(
    when=st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=45)), timezone(-timedelta(hours=11))]),
    )
)  # fmt: skip
def test_when_is_utc_to_the_microsecond_however_often_it_is_written(when: datetime) -> None:
    utc = when.astimezone(UTC)
    expected = utc.strftime("%Y-%m-%dT%H:%M:%S") + (f".{utc.microsecond:06d}" if utc.microsecond else "") + "Z"
    # New, remembered, and a neighbour sharing its second written in between.
    assert format_when(when) == expected
    format_when(when.replace(microsecond=(when.microsecond + 1) % 1_000_000))
    assert format_when(when) == expected
