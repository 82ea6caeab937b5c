"""The canonical page key: what counters, page-minute items, alerts and heatmaps name a page by.

The event's `page` is whatever the tracker sent: a path, or a full URL with tracking
parameters, fragments, mixed-case hosts, thousands of bytes. Counting under that string would
split one page into as many rows as there are campaign links, and a long one would not fit a
DynamoDB key. The key is:

- a path (`/pricing?utm_source=x#plans`): the path alone, `/pricing`;
- a URL (`https://Shop.Example.com:443/pricing?gclid=1`): the host lower-cased (user info and
  the scheme's default port dropped, another port kept) and the path, `shop.example.com/pricing`;
- query parameters named in an allow-list are kept, in the order they came
  (`/search?q=shoes` with `q` allowed);
- at most `MAX_PAGE_KEY_BYTES` bytes of UTF-8: a longer key keeps a readable prefix and the
  hash of the whole key (`/very/long/…~3f2a9c0d1e7b4a65`), so distinct long pages stay distinct.

The archive keeps the producer's bytes untouched; only the aggregates use the key. Pure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import lru_cache
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit

MAX_PAGE_KEY_BYTES: Final = 512
"""Far inside DynamoDB's 2,048-byte partition key and 1,024-byte sort key (an alert's sort key
is the minute, `#` and the page key)."""
HASH_SUFFIX_CHARACTERS: Final = 16
_ELLIPSIS: Final = "…~"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def page_key(page: str, keep_query_params: Iterable[str] = ()) -> str:
    """The canonical key of a page (see the module's docstring)."""
    return _page_key(page, frozenset(keep_query_params))


@lru_cache(maxsize=8192)
def _page_key(page: str, keep: frozenset[str]) -> str:
    # Popular pages repeat all the time: the cache makes the key almost free per event.
    if page.startswith("/"):
        path, _, rest = page.partition("?")
        path = path.partition("#")[0]
        query = rest.partition("#")[0]
        key = path + _kept_query(query, keep)
    else:
        key = _url_key(page, keep)
    return bounded(key)


def _url_key(url: str, keep: frozenset[str]) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is no number: keep the location as the contract let it
        return url.partition("?")[0].partition("#")[0]
    host = (parts.hostname or "").lower()
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    return host + (parts.path or "/") + _kept_query(parts.query, keep)


def _kept_query(query: str, keep: frozenset[str]) -> str:
    if not keep or not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    kept = [(name, value) for name, value in pairs if name in keep]
    return "?" + urlencode(kept) if kept else ""


def bounded(key: str, limit: int = MAX_PAGE_KEY_BYTES) -> str:
    """`key` if it fits `limit` bytes of UTF-8, else a prefix cut on a character boundary,
    an ellipsis and a hash of the whole key (same key, same result)."""
    encoded = key.encode()
    if len(encoded) <= limit:
        return key
    digest = hashlib.blake2b(encoded, digest_size=8).hexdigest()
    room = limit - len(_ELLIPSIS.encode()) - len(digest)
    prefix = encoded[:room].decode(errors="ignore")  # a cut multi-byte character goes whole
    return f"{prefix}{_ELLIPSIS}{digest}"
