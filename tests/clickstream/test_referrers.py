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


def test_pseudo_referrer_classes_is_what_classify_says_and_read_only() -> None:
    from clickstream.referrers import OTHER, PSEUDO_REFERRER_CLASSES, classify

    assert PSEUDO_REFERRER_CLASSES["other-google"] == "search"
    assert all(classify(prev) == cls for prev, cls in PSEUDO_REFERRER_CLASSES.items())
    assert "other-unknown" not in PSEUDO_REFERRER_CLASSES and classify("other-unknown") == OTHER
    with pytest.raises(TypeError):
        PSEUDO_REFERRER_CLASSES["other-x"] = "link"  # type: ignore[index]
