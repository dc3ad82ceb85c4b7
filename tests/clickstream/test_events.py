from __future__ import annotations

import pytest

from clickstream.events import Click, EventError, decode_record, encode_batch, encode_click

CLICK = Click(7, 1_422_748_800_000, "other-google", '"Weird_Al"_Yankovic', "other")


def test_click_round_trips_with_quotes_in_titles() -> None:
    assert decode_record(encode_click(CLICK)) == [CLICK]


def test_batch_round_trips_and_must_share_the_destination() -> None:
    second = CLICK._replace(click_id=8, prev="A")
    assert decode_record(encode_batch([CLICK, second])) == [CLICK, second]
    with pytest.raises(ValueError, match="one destination"):
        encode_batch([CLICK, CLICK._replace(curr="Other")])


@pytest.mark.parametrize(("raw", "reason"), [
    (b"{not json", "not JSON"),
    (None, "null value"),
    (b"[1,2]", "expected a JSON object"),
    (b'{"id":1,"ts":1422748800000,"prev":"a"}', r"missing field\(s\): curr, type"),
    (b'{"id":-1,"ts":1422748800000,"prev":"a","curr":"b","type":"link"}', "id: expected a non-negative"),
    (b'{"id":1,"ts":5,"prev":"a","curr":"b","type":"link"}', "ts: 5 is outside"),
    (b'{"id":1,"ts":1422748800000,"prev":"","curr":"b","type":"link"}', "prev: expected a non-empty title"),
    (b'{"id":1,"ts":1422748800000,"prev":"a","curr":"b","type":"nope"}', "type: 'nope' is not one of"),
    (b'{"clicks":[[1,1422748800000,"a","b"]]}', r"clicks\[0\]: expected \[id, ts, prev, curr, type\]"),
])
def test_bad_records_say_why(raw: bytes | None, reason: str) -> None:
    with pytest.raises(EventError, match=reason):
        decode_record(raw)


def test_control_characters_and_extra_fields_are_rejected_with_their_reason() -> None:
    with pytest.raises(EventError, match="prev: title holds a control character"):
        decode_record(encode_click(CLICK._replace(prev="Foo\x00Bar")))
    with pytest.raises(EventError, match="unexpected field"):
        decode_record(b'{"id": 1, "ts": 1422748800000, "prev": "a", "curr": "b", "type": "link", "x": 1}')
