"""The time-window compaction window chosen for a retention (pure)."""

from __future__ import annotations

import pytest

from clickstream.store.cassandra import twcs_window


@pytest.mark.parametrize(("ttl_s", "window"), [
    (60, ("MINUTES", 1)), (3600, ("MINUTES", 2)), (86400, ("MINUTES", 48)), (7 * 86400, ("HOURS", 6)),
    (90 * 86400, ("DAYS", 3)),
])
def test_twcs_window_gives_about_thirty_windows_per_ttl(ttl_s: int, window: tuple[str, int]) -> None:
    assert twcs_window(ttl_s) == window
