"""The columnar decoder agrees with the per-record one on any input (hypothesis fuzz),
for one-click records and both batch forms (columns, and the older rows).

``decode_values`` (pyarrow JSON reader, vectorised masks) must accept exactly the records
``clickstream.events.decode_record`` accepts, give the same clicks in record order, and
the same reason for every bad one.
"""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clickstream.events import (
    BATCH_FIELDS,
    MAX_TS_MS,
    MIN_TS_MS,
    Click,
    EventError,
    decode_record,
    encode_batch,
)
from pipeline.operators import decode
from pipeline.operators.decode import decode_values

TITLES = st.one_of(st.text(min_size=0, max_size=12), st.sampled_from(["A", "other-search", "Foo\x00Bar",
                                                                      "x" * 1025, "é", "\ud7ff"]))
INTS = st.one_of(st.integers(min_value=-5, max_value=2**63 - 1),
                 st.integers(min_value=MIN_TS_MS - 2, max_value=MAX_TS_MS + 2),
                 st.sampled_from([2**64, 2**63, -(2**63)]))
VALUES = st.one_of(INTS, TITLES, st.booleans(), st.none(), st.floats(allow_nan=False, allow_infinity=False),
                   st.sampled_from(["link", "external", "other", "redlink", "portal"]),
                   st.lists(st.integers(), max_size=2))
FIELDS = st.sampled_from(["id", "ts", "prev", "curr", "type", "extra", "clicks", "ids"])


@st.composite
def click_objects(draw: st.DrawFn) -> dict:
    obj = {"id": draw(st.one_of(st.integers(0, 2**40), VALUES)),
           "ts": draw(st.one_of(st.integers(MIN_TS_MS, MAX_TS_MS - 1), VALUES)),
           "prev": draw(st.one_of(st.sampled_from(["A", "other-google", "B_(c)"]), VALUES)),
           "curr": draw(st.one_of(st.sampled_from(["X", "Y"]), VALUES)),
           "type": draw(st.one_of(st.sampled_from(["link", "other"]), VALUES))}
    for name in draw(st.lists(FIELDS, max_size=2)):
        if draw(st.booleans()):
            obj.pop(name, None)
        else:
            obj[name] = draw(VALUES)
    return obj


# A batch record's lists: the values a producer writes, and values of the right JSON type
# that break a rule (so the record parses and the masks must catch them).
GOOD_LISTS = {"ids": st.integers(0, 2**40), "ts": st.integers(MIN_TS_MS, MAX_TS_MS - 1),
              "prevs": st.sampled_from(["A", "other-google", "B_(c)"]),
              "types": st.sampled_from(["link", "other"])}
TYPED_LISTS = {"ids": st.one_of(st.integers(-5, 2**63 - 1), st.none()),
               "ts": st.one_of(st.integers(MIN_TS_MS - 2, MAX_TS_MS + 2), st.none()),
               "prevs": st.one_of(TITLES, st.none()),
               "types": st.sampled_from(["link", "external", "other", "redlink", "portal", "", None])}


@st.composite
def column_objects(draw: st.DrawFn) -> dict:
    """Batch records as columns, mostly valid; sometimes a value that breaks a rule, a
    list of another length, or (rarer, the block then fails to parse) a value of another
    JSON type, a missing, extra or reordered field."""
    n = draw(st.integers(0, 5))
    obj = {"curr": draw(st.one_of(st.sampled_from(["X", "Y"]), TITLES, st.none()))}
    for name, good in GOOD_LISTS.items():
        kind = draw(st.integers(0, 19))
        if kind == 0:
            obj[name] = draw(st.one_of(VALUES, st.lists(VALUES, min_size=n, max_size=n)))
        elif kind <= 2:
            obj[name] = draw(st.one_of(st.lists(good, max_size=6), st.none()))
        elif kind <= 5:
            obj[name] = draw(st.lists(st.one_of(good, TYPED_LISTS[name]), min_size=n, max_size=n))
        else:
            obj[name] = draw(st.lists(good, min_size=n, max_size=n))
    if draw(st.integers(0, 19)) == 0:
        name = draw(st.sampled_from([*BATCH_FIELDS, "id", "extra", "clicks"]))
        if draw(st.booleans()):
            obj.pop(name, None)
        else:
            obj[name] = draw(VALUES)
    if draw(st.integers(0, 19)) == 0:
        obj = dict(draw(st.permutations(list(obj.items()))))
    return obj


@st.composite
def column_values(draw: st.DrawFn) -> bytes:
    good = json.dumps(draw(column_objects()), separators=(",", ":"),
                      ensure_ascii=draw(st.booleans())).encode()
    if draw(st.integers(0, 19)):
        return good
    return draw(st.sampled_from([good + b"\n" + good, good + good, good[:-1], good.replace(b":", b": ", 1)]))


def dumps(obj: object) -> bytes:
    """JSON like a producer might write it (the stdlib writes integers of any size)."""
    return json.dumps(obj).encode()


@st.composite
def record_values(draw: st.DrawFn) -> bytes | None:
    kind = draw(st.integers(0, 11))
    if kind <= 4:
        return dumps(draw(click_objects()))
    if kind in (10, 11):
        return draw(column_values())
    if kind == 5:
        rows = draw(st.lists(st.one_of(
            st.tuples(st.integers(0, 2**40), st.integers(MIN_TS_MS, MAX_TS_MS - 1), TITLES,
                      st.sampled_from(["X", "Y"]), st.sampled_from(["link", "other", "nope"])).map(list),
            st.lists(VALUES, max_size=6)), max_size=4))
        return dumps({"clicks": rows})
    if kind == 6:
        return draw(st.binary(max_size=40))
    if kind == 7:
        return None
    if kind == 8:
        good = dumps(draw(click_objects()))
        return draw(st.sampled_from([good + b"\n" + good, good + b" x", b"  " + good, good[:-1]]))
    return dumps(draw(st.one_of(st.lists(VALUES, max_size=3), VALUES)))


def oracle(values: list[bytes | None]) -> tuple[list[tuple], list[tuple[int, str]]]:
    clicks, dead = [], []
    for i, value in enumerate(values):
        try:
            clicks += [tuple(c) for c in decode_record(value)]
        except EventError as exc:
            dead.append((i, exc.reason))
    return clicks, dead


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.lists(record_values(), min_size=1, max_size=60),
                st.lists(column_values(), min_size=1, max_size=60)))
def test_columnar_decode_equals_the_per_record_decoder(values: list[bytes | None]) -> None:
    decoded = decode_values(values)
    want_clicks, want_dead = oracle(values)
    got = [tuple(r.values()) for r in decoded.clicks.to_pylist()]
    assert got == want_clicks
    assert decoded.dead == want_dead


def test_a_large_clean_batch_takes_the_columnar_path_and_loses_nothing() -> None:
    values = [orjson.dumps({"id": i, "ts": MIN_TS_MS + i, "prev": f"p{i % 7}", "curr": f"c{i % 11}",
                            "type": "link"}) for i in range(5_000)]
    values[1234] = b"{oops"
    decoded = decode_values(values)
    assert decoded.clicks.num_rows == 4_999
    assert decoded.dead == [(1234, decoded.dead[0][1])] and decoded.dead[0][1].startswith("not JSON")


def test_a_large_block_of_batch_records_takes_the_columnar_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the corrupted records reach ``decode_record``; the rest are decoded as columns."""
    clicks = [Click(i, MIN_TS_MS + i, f"p{i % 7}", f"c{i // 100}", "link") for i in range(100_000)]
    values = [encode_batch(clicks[i:i + 100]) for i in range(0, len(clicks), 100)]
    values[3] = values[3].replace(b'"link"', b'"nope"', 1)  # a bad value in a good parse
    values[500] = values[500].replace(b"],", b",1],", 1)  # lists of different lengths
    values[998] = values[998][:-1]  # a parse error: the block is split
    values.append(orjson.dumps({"clicks": [list(clicks[0])]}))  # the older form, beside
    asked: list[int] = []
    monkeypatch.setattr(decode, "decode_record", lambda v: asked.append(values.index(v)) or decode_record(v))
    decoded = decode_values(values)
    assert {3, 500, 998} <= set(asked) and len(asked) < 2 + decode.SPLIT_BELOW  # 998's small block
    assert [i for i, _ in decoded.dead] == [3, 500, 998]
    assert decoded.dead[0][1] == "types[0]: 'nope' is not one of ['external', 'link', 'other', 'redlink']"
    assert decoded.dead[1][1] == "ts: 100 values where ids has 101"
    assert decoded.dead[2][1].startswith("not JSON")
    assert decoded.clicks.num_rows == 99_700 + 1
    bad = {3, 500, 998}
    want = [c for r in range(1000) if r not in bad for c in clicks[r * 100:(r + 1) * 100]] + [clicks[0]]
    assert decoded.clicks["click_id"].to_pylist() == [c.click_id for c in want]
    assert decoded.clicks["curr"].to_pylist() == [c.curr for c in want]


@pytest.mark.parametrize("title", ["a\x7fb", "a\x01b", "a\tb"])
@pytest.mark.parametrize("form", ["one click", "columns"])
def test_a_control_character_in_a_title_is_found_with_or_without_an_escape(title: str, form: str) -> None:
    """A raw DEL (which the JSON reader lets through) and an escaped control character
    (a backslash in the record) are both found, in a block of good records, some with a
    backslash of their own (quoted titles)."""
    good = [Click(i, MIN_TS_MS + i, f"p{i % 7}" if i % 50 else f'Song_"{i}"', f"c{i // 10}", "link")
            for i in range(200)]
    bad = Click(10_000, MIN_TS_MS, title, "c0", "link")
    if form == "one click":
        values = [orjson.dumps({"id": c.click_id, "ts": c.ts_ms, "prev": c.prev, "curr": c.curr,
                                "type": c.link_type}) for c in [*good[:100], bad, *good[100:]]]
    else:
        values = [encode_batch(good[i:i + 10]) for i in range(0, 100, 10)]
        values += [encode_batch([bad])] + [encode_batch(good[i:i + 10]) for i in range(100, 200, 10)]
    bad_value = values[100 if form == "one click" else 10]
    assert (b"\\" in bad_value) == (title != "a\x7fb")  # orjson escapes below 0x20 only
    decoded = decode_values(values)
    assert decoded.dead == oracle(values)[1]
    assert len(decoded.dead) == 1 and decoded.dead[0][1].endswith("title holds a control character")
    assert decoded.clicks["click_id"].to_pylist() == [c.click_id for c in good]
