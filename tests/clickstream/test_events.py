from __future__ import annotations

import orjson
import pytest

from clickstream.events import Click, EventError, decode_record, encode_batch, encode_click

CLICK = Click(7, 1_422_748_800_000, "other-google", '"Weird_Al"_Yankovic', "other")


def test_click_round_trips_with_quotes_in_titles() -> None:
    assert decode_record(encode_click(CLICK)) == [CLICK]


def test_batch_round_trips_as_columns_and_must_share_the_destination() -> None:
    second = CLICK._replace(click_id=8, prev="A")
    value = encode_batch([CLICK, second])
    assert value == (b'{"curr":"\\"Weird_Al\\"_Yankovic","ids":[7,8],"ts":[1422748800000,1422748800000],'
                     b'"prevs":["other-google","A"],"types":["other","other"]}')
    assert decode_record(value) == [CLICK, second]
    with pytest.raises(ValueError, match="one destination"):
        encode_batch([CLICK, CLICK._replace(curr="Other")])
    with pytest.raises(ValueError, match="at least one click"):
        encode_batch([])


def test_the_older_batch_form_still_decodes() -> None:
    second = CLICK._replace(click_id=8, prev="A")
    assert decode_record(orjson.dumps({"clicks": [list(CLICK), list(second)]})) == [CLICK, second]


BATCH = (b'"curr":"b","ids":[1,2],"ts":[1422748800000,1422748800001],'
         b'"prevs":["a","c"],"types":["link","other"]')


@pytest.mark.parametrize(("raw", "reason"), [
    (b"{not json", "not JSON"),
    (None, "null value"),
    (b"[1,2]", "expected a JSON object"),
    (b'{"id":1,"ts":1422748800000,"prev":"a"}', r"missing field\(s\): curr, type"),
    (b'{"id":-1,"ts":1422748800000,"prev":"a","curr":"b","type":"link"}', "id: expected a non-negative"),
    (b'{"id":1,"ts":5,"prev":"a","curr":"b","type":"link"}', "ts: 5 is outside"),
    (b'{"id":1,"ts":1422748800000,"prev":"","curr":"b","type":"link"}', "prev: expected a non-empty title"),
    (b'{"id":1,"ts":1422748800000,"prev":"a","curr":"b","type":"nope"}', "type: 'nope' is not one of"),
    (b'{"id":9223372036854775808,"ts":1422748800000,"prev":"a","curr":"b","type":"link"}', "below 2\\*\\*63"),
    (b'{"clicks":[[1,1422748800000,"a","b"]]}', r"clicks\[0\]: expected \[id, ts, prev, curr, type\]"),
    (b"{" + BATCH.replace(b',"types":["link","other"]', b"") + b"}",
     r"missing field\(s\) of a batch record: types"),
    (b"{" + BATCH + b',"id":3}', r"unexpected field\(s\) of a batch record: id"),
    (b"{" + BATCH.replace(b"[1,2]", b"[1]") + b"}", "ts: 2 values where ids has 1"),
    (b"{" + BATCH.replace(b'["a","c"]', b'["a"]') + b"}", "prevs: 1 values where ids has 2"),
    (b'{"curr":"b","ids":[],"ts":[],"prevs":[],"types":[]}', "ids: expected a non-empty list"),
    (b"{" + BATCH.replace(b'["a","c"]', b'"a"') + b"}", "prevs: expected a non-empty list"),
    (b"{" + BATCH.replace(b"[1,2]", b"[1,-2]") + b"}", r"ids\[1\]: expected a non-negative"),
    (b"{" + BATCH.replace(b"1422748800001", b"5") + b"}", r"ts\[1\]: 5 is outside"),
    (b"{" + BATCH.replace(b'"c"', b'"c\\n"') + b"}", r"prevs\[1\]: title holds a control character"),
    (b"{" + BATCH.replace(b'"other"', b"7") + b"}", r"types\[1\]: 7 is not one of"),
    (b"{" + BATCH.replace(b'"b"', b"null") + b"}", "curr: expected a non-empty title"),
])
def test_bad_records_say_why(raw: bytes | None, reason: str) -> None:
    with pytest.raises(EventError, match=reason):
        decode_record(raw)


def test_control_characters_and_extra_fields_are_rejected_with_their_reason() -> None:
    with pytest.raises(EventError, match="prev: title holds a control character"):
        decode_record(encode_click(CLICK._replace(prev="Foo\x00Bar")))
    with pytest.raises(EventError, match="unexpected field"):
        decode_record(b'{"id": 1, "ts": 1422748800000, "prev": "a", "curr": "b", "type": "link", "x": 1}')
