"""The columnar decoder agrees with the per-record one on any input (hypothesis fuzz).

``decode_values`` (pyarrow JSON reader, vectorised masks) must accept exactly the records
``clickstream.events.decode_record`` accepts, give the same clicks in record order, and
the same reason for every bad one.
"""

from __future__ import annotations

import json

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clickstream.events import MAX_TS_MS, MIN_TS_MS, EventError, decode_record
from pipeline.operators.decode import decode_values

TITLES = st.one_of(st.text(min_size=0, max_size=12), st.sampled_from(["A", "other-search", "Foo\x00Bar",
                                                                      "x" * 1025, "é", "\ud7ff"]))
INTS = st.one_of(st.integers(min_value=-5, max_value=2**63 - 1),
                 st.integers(min_value=MIN_TS_MS - 2, max_value=MAX_TS_MS + 2),
                 st.sampled_from([2**64, -(2**63)]))
VALUES = st.one_of(INTS, TITLES, st.booleans(), st.none(), st.floats(allow_nan=False, allow_infinity=False),
                   st.sampled_from(["link", "external", "other", "redlink", "portal"]),
                   st.lists(st.integers(), max_size=2))
FIELDS = st.sampled_from(["id", "ts", "prev", "curr", "type", "extra", "clicks"])


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


def dumps(obj: object) -> bytes:
    """JSON like a producer might write it (the stdlib writes integers of any size)."""
    return json.dumps(obj).encode()


@st.composite
def record_values(draw: st.DrawFn) -> bytes | None:
    kind = draw(st.integers(0, 9))
    if kind <= 4:
        return dumps(draw(click_objects()))
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
@given(st.lists(record_values(), min_size=1, max_size=60))
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
