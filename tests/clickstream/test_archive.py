"""The archive's shared helpers (pure: no file system)."""

from __future__ import annotations

from clickstream.archive import read_until_whole


def test_a_short_read_is_read_again_until_whole() -> None:
    reads = iter([b"", b"pay", b"payload", b"never read"])
    got = read_until_whole(lambda: next(reads), lambda b: b != b"payload", within_s=5.0, pause_s=0.0)
    assert got == b"payload"
    assert next(reads) == b"never read"


def test_a_read_still_short_after_the_wait_is_returned_as_it_is() -> None:
    calls = []

    def read() -> bytes:
        calls.append(1)
        return b"pay"

    got = read_until_whole(read, lambda b: b != b"payload", within_s=0.05, pause_s=0.01)
    assert got == b"pay" and 2 <= len(calls) <= 10
