"""Where a visit came from, decided once from its landing (the session's first page view)
and carried by every event of the session. Pure.

In this order, the first that says anything decides (docs/enrichment.md):

1. The landing URL's `utm_source` (with `utm_medium`, `utm_campaign`, `utm_term`,
   `utm_content`), else Segment's `context.campaign` (its `source`, `medium`, `name`, ...).
2. An ad click id on the landing URL (`gclid`, `gbraid`, `wbraid`, `dclid`, `msclkid`,
   `yclid`, `ttclid`, `twclid`, `li_fat_id`; `fbclid`, which Facebook adds to every link
   out, unpaid ones too, says organic social).
3. The referrer's host: a search engine is `organic`, a social network `social`, a webmail
   `email`, any other site a `referral` whose source is its host; a referrer on the
   landing's own site (same registrable domain) is no source at all.
4. Nothing: `(direct)` / `(none)`.

The channel is then GA4's default channel group of (source, medium, campaign): `channels`.
Registrable domains come from the Public Suffix List bundled with `publicsuffixlist`
(pinned, read at start, never fetched).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, urlsplit

from publicsuffixlist import PublicSuffixList

from clickstream.kernel.enrichment.channels import Channel, channel_of

DIRECT: Final = "(direct)"
NONE: Final = "(none)"
NOT_SET: Final = "(not set)"

CLICK_IDS: Final = {
    "gclid": ("google", "cpc"),
    "gbraid": ("google", "cpc"),
    "wbraid": ("google", "cpc"),
    "dclid": ("google", "display"),
    "msclkid": ("bing", "cpc"),
    "yclid": ("yandex", "cpc"),
    "ttclid": ("tiktok", "paid"),
    "twclid": ("twitter", "paid"),
    "li_fat_id": ("linkedin", "paid"),
    "fbclid": ("facebook", "social"),
}
"""Click id -> (source, medium), in this order of precedence."""

SEARCH_ENGINES: Final = frozenset(
    {"google", "bing", "yahoo", "duckduckgo", "baidu", "yandex", "ecosia", "naver", "seznam",
     "qwant", "startpage", "sogou", "daum", "ask", "kagi", "mojeek", "perplexity"}
)  # fmt: skip
"""Search engines named by their registrable domain's first label (google.co.uk: google)."""
SEARCH_HOSTS: Final = {"search.brave.com": "brave", "search.aol.com": "aol", "you.com": "you.com"}

SOCIAL_NETWORKS: Final = {
    "facebook.com": "facebook",
    "fb.com": "facebook",
    "instagram.com": "instagram",
    "twitter.com": "twitter",
    "x.com": "twitter",
    "t.co": "twitter",
    "linkedin.com": "linkedin",
    "lnkd.in": "linkedin",
    "reddit.com": "reddit",
    "pinterest.com": "pinterest",
    "tiktok.com": "tiktok",
    "snapchat.com": "snapchat",
    "tumblr.com": "tumblr",
    "quora.com": "quora",
    "vk.com": "vk",
    "weibo.com": "weibo",
    "threads.net": "threads",
    "bsky.app": "bluesky",
    "mastodon.social": "mastodon",
    "discord.com": "discord",
    "telegram.org": "telegram",
    "t.me": "telegram",
    "whatsapp.com": "whatsapp",
    "ycombinator.com": "news.ycombinator.com",
}
"""A registrable domain -> the social network's name."""
VIDEO_SITES: Final = {
    "youtube.com": "youtube",
    "youtu.be": "youtube",
    "vimeo.com": "vimeo",
    "twitch.tv": "twitch",
    "dailymotion.com": "dailymotion",
}
WEBMAIL_HOSTS: Final = frozenset(
    {"mail.google.com", "outlook.live.com", "outlook.office.com", "outlook.office365.com",
     "mail.yahoo.com", "mail.aol.com", "mail.proton.me", "mail.yandex.ru", "mail.zoho.com",
     "webmail.gmx.net", "mail.gmx.com", "navigator.web.de", "mail.icloud.com"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Acquisition:
    source: str
    medium: str
    campaign: str | None
    term: str | None
    content: str | None
    referrer_host: str | None
    channel: Channel


_suffixes = PublicSuffixList()  # the bundled list, read once


@functools.lru_cache(maxsize=4096)
def registrable_domain(host: str) -> str:
    """The part of a host its owner registered (`news.bbc.co.uk`: `bbc.co.uk`); an address
    or a name the list does not know is itself."""
    host = host.lower().rstrip(".")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return _suffixes.privatesuffix(host) or host
    return host


def host_of(url: str | None) -> str | None:
    """The host of an absolute URL, lower case, without `www.`; None for a path or junk."""
    if not url:
        return None
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    if not host:
        return None
    return host.removeprefix("www.")


def _first(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0].strip() or None if values else None


def referrer_source(host: str) -> tuple[str, str]:
    """(source, medium) of a referring site's host."""
    if host in WEBMAIL_HOSTS:
        return host, "email"
    if host in SEARCH_HOSTS:
        return SEARCH_HOSTS[host], "organic"
    domain = registrable_domain(host)
    if domain in SOCIAL_NETWORKS:
        return SOCIAL_NETWORKS[domain], "social"
    if domain in VIDEO_SITES:
        return VIDEO_SITES[domain], "referral"
    first_label = domain.split(".", 1)[0]
    if first_label in SEARCH_ENGINES and host.split(".", 1)[0] not in {"mail", "maps", "docs"}:
        return first_label, "organic"
    return host, "referral"


def acquisition_of(
    landing: str | None,
    referrer: str | None,
    campaign: Mapping[str, object] | None = None,
) -> Acquisition:
    """A session's acquisition from its landing URL, the referrer of its landing and
    Segment's `context.campaign` (when the event came through Segment's API)."""
    query = parse_qs(urlsplit(landing).query) if landing and "?" in landing else {}
    given = {str(k): str(v) for k, v in (campaign or {}).items() if v not in (None, "")}
    referrer_host = host_of(referrer)
    landing_host = host_of(landing)
    term = _first(query, "utm_term") or given.get("term")
    content = _first(query, "utm_content") or given.get("content")
    name = _first(query, "utm_campaign") or given.get("name")
    utm_source = _first(query, "utm_source")
    if utm_source:
        source, medium = utm_source, _first(query, "utm_medium") or NOT_SET
    elif given.get("source"):
        source, medium = given["source"], given.get("medium") or NOT_SET
    elif clicked := next((ids for key, ids in CLICK_IDS.items() if _first(query, key)), None):
        source, medium = clicked
    elif referrer_host and not (
        landing_host and registrable_domain(referrer_host) == registrable_domain(landing_host)
    ):
        source, medium = referrer_source(referrer_host)
    else:
        source, medium = DIRECT, NONE
    return Acquisition(
        source=source,
        medium=medium,
        campaign=name,
        term=term,
        content=content,
        referrer_host=referrer_host,
        channel=channel_of(source, medium, name),
    )
