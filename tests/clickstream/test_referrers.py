from __future__ import annotations

import pytest

from clickstream.referrers import classify


@pytest.mark.parametrize(("prev", "expected"), [
    ("other-search", "search"), ("other-google", "search"), ("other-bing", "search"),
    ("other-yahoo", "search"), ("other-empty", "direct"), ("other-internal", "internal"),
    ("other-wikipedia", "internal"), ("other-external", "external"), ("other-twitter", "social"),
    ("other-facebook", "social"), ("other-other", "other"), ("other-something-new", "other"),
    ("London", "link"), ("Other-like_title", "link"),
])
def test_classify(prev: str, expected: str) -> None:
    assert classify(prev) == expected
