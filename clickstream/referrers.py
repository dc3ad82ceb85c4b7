"""Referrer classes: what kind of place a click came from, shared by every stage.

``classify(prev)`` maps the dump's ``prev`` column to one of ``REFERRER_CLASSES``:

==================================================  ==========
prev                                                class
==================================================  ==========
other-search, other-google, other-bing, other-yahoo  search
other-empty                                          direct
other-internal, other-wikipedia                      internal
other-external                                       external
other-twitter, other-facebook, other-reddit, ...     social
other-other and any other ``other-*``                other
an article title                                     link
==================================================  ==========
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType

SEARCH = "search"
DIRECT = "direct"
INTERNAL = "internal"
EXTERNAL = "external"
SOCIAL = "social"
OTHER = "other"
LINK = "link"
REFERRER_CLASSES = (LINK, SEARCH, DIRECT, INTERNAL, EXTERNAL, SOCIAL, OTHER)

OTHER_PREFIX = "other-"

_BY_PREV = {
    "other-search": SEARCH,
    "other-google": SEARCH,
    "other-bing": SEARCH,
    "other-yahoo": SEARCH,
    "other-duckduckgo": SEARCH,
    "other-empty": DIRECT,
    "other-internal": INTERNAL,
    "other-wikipedia": INTERNAL,
    "other-external": EXTERNAL,
    "other-twitter": SOCIAL,
    "other-facebook": SOCIAL,
    "other-reddit": SOCIAL,
    "other-instagram": SOCIAL,
    "other-youtube": SOCIAL,
    "other-other": OTHER,
}
# Read-only view of the named ``other-*`` referrers (any other ``other-*`` is OTHER, any
# other value LINK), for engines that cannot call ``classify``: e.g. a Spark map expression.
PSEUDO_REFERRER_CLASSES: Mapping[str, str] = MappingProxyType(_BY_PREV)


@lru_cache(maxsize=65536)
def classify(prev: str) -> str:
    """The referrer class of a ``prev`` value (pure; cached, titles repeat a lot)."""
    if prev.startswith(OTHER_PREFIX):
        return _BY_PREV.get(prev, OTHER)
    return LINK
