"""A visit's channel, by GA4's default channel group: its names and its order of rules (the
first that holds wins), written from Google's published definitions (Analytics Help,
"[GA4] Default channel group"). Pure.

GA4 matches sources against internal lists of search, social, video and shopping sites; ours
are below (`SEARCH_SOURCES`, ...), short and by name: a source is what `acquisition`
decided (`google`, `facebook`, a referring host's registrable domain). Matching ignores
case, as GA4's does. docs/enrichment.md has the table.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Channel(StrEnum):
    DIRECT = "Direct"
    CROSS_NETWORK = "Cross-network"
    PAID_SHOPPING = "Paid Shopping"
    PAID_SEARCH = "Paid Search"
    PAID_SOCIAL = "Paid Social"
    PAID_VIDEO = "Paid Video"
    DISPLAY = "Display"
    PAID_OTHER = "Paid Other"
    ORGANIC_SHOPPING = "Organic Shopping"
    ORGANIC_SOCIAL = "Organic Social"
    ORGANIC_VIDEO = "Organic Video"
    ORGANIC_SEARCH = "Organic Search"
    EMAIL = "Email"
    AFFILIATES = "Affiliates"
    REFERRAL = "Referral"
    AUDIO = "Audio"
    SMS = "SMS"
    MOBILE_PUSH = "Mobile Push Notifications"
    UNASSIGNED = "Unassigned"


SEARCH_SOURCES: Final = frozenset(
    {"google", "bing", "yahoo", "duckduckgo", "baidu", "yandex", "ecosia", "naver", "seznam",
     "qwant", "startpage", "brave", "sogou", "so.com", "daum", "ask", "aol", "yahoo japan",
     "search.yahoo.com", "kagi", "mojeek", "you.com", "perplexity"}
)  # fmt: skip
SOCIAL_SOURCES: Final = frozenset(
    {"facebook", "instagram", "twitter", "x", "t.co", "linkedin", "lnkd.in", "reddit",
     "pinterest", "tiktok", "snapchat", "tumblr", "quora", "vk", "weibo", "threads",
     "bluesky", "bsky.app", "mastodon", "discord", "telegram", "whatsapp", "line", "wechat",
     "meetup", "xing", "news.ycombinator.com", "hackernews", "m.facebook.com", "l.facebook.com",
     "lm.facebook.com", "fb", "ig", "pinterest.com", "reddit.com", "facebook.com",
     "instagram.com", "linkedin.com", "twitter.com", "x.com", "tiktok.com"}
)  # fmt: skip
VIDEO_SOURCES: Final = frozenset(
    {"youtube", "youtube.com", "m.youtube.com", "youtu.be", "vimeo", "vimeo.com", "twitch",
     "twitch.tv", "dailymotion", "dailymotion.com", "wistia", "tiktok video"}
)  # fmt: skip
SHOPPING_SOURCES: Final = frozenset(
    {"google shopping", "shopping.google.com", "amazon", "amazon.com", "ebay", "ebay.com",
     "etsy", "etsy.com", "shopify", "shopify.com", "walmart", "walmart.com", "aliexpress",
     "igshopping", "alibaba"}
)  # fmt: skip

PAID_MEDIUM: Final = re.compile(r"^(.*cp.*|ppc|retargeting|paid.*)$")
SHOPPING_CAMPAIGN: Final = re.compile(r"^(.*(([^a-df-z]|^)shop|shopping).*)$")
DISPLAY_MEDIA: Final = frozenset({"display", "banner", "expandable", "interstitial", "cpm"})
SOCIAL_MEDIA: Final = frozenset(
    {"social", "social-network", "social-media", "sm", "social network", "social media"}
)
EMAIL_WORDS: Final = frozenset({"email", "e-mail", "e_mail", "e mail"})
REFERRAL_MEDIA: Final = frozenset({"referral", "app", "link"})


@dataclass(frozen=True, slots=True)
class Visit:
    """What the channel is decided from, lower case."""

    source: str
    medium: str
    campaign: str

    @classmethod
    def of(cls, source: str | None, medium: str | None, campaign: str | None) -> Visit:
        return cls((source or "").lower(), (medium or "").lower(), (campaign or "").lower())

    @property
    def paid(self) -> bool:
        return PAID_MEDIUM.match(self.medium) is not None


def _mobile_push(visit: Visit) -> bool:
    medium = visit.medium
    return (
        medium.endswith("push")
        or "mobile" in medium
        or "notification" in medium
        or visit.source == "firebase"
    )


RULES: Final[tuple[tuple[Channel, str, Callable[[Visit], object]], ...]] = (
    (
        Channel.DIRECT,
        "source is (direct) and medium is (none) or (not set)",
        lambda v: v.source == "(direct)" and v.medium in {"(none)", "(not set)", ""},
    ),
    (
        Channel.CROSS_NETWORK,
        "campaign contains cross-network",
        lambda v: "cross-network" in v.campaign,
    ),
    (
        Channel.PAID_SHOPPING,
        "(source is a shopping site or campaign names shopping) and medium is paid",
        lambda v: (v.source in SHOPPING_SOURCES or SHOPPING_CAMPAIGN.match(v.campaign)) and v.paid,
    ),
    (
        Channel.PAID_SEARCH,
        "source is a search engine and medium is paid",
        lambda v: v.source in SEARCH_SOURCES and v.paid,
    ),
    (
        Channel.PAID_SOCIAL,
        "source is a social site and medium is paid",
        lambda v: v.source in SOCIAL_SOURCES and v.paid,
    ),
    (
        Channel.PAID_VIDEO,
        "source is a video site and medium is paid",
        lambda v: v.source in VIDEO_SOURCES and v.paid,
    ),
    (
        Channel.DISPLAY,
        "medium is display, banner, expandable, interstitial or cpm",
        lambda v: v.medium in DISPLAY_MEDIA,
    ),
    (Channel.PAID_OTHER, "medium is paid", lambda v: v.paid),
    (
        Channel.ORGANIC_SHOPPING,
        "source is a shopping site or campaign names shopping",
        lambda v: v.source in SHOPPING_SOURCES or SHOPPING_CAMPAIGN.match(v.campaign),
    ),
    (
        Channel.ORGANIC_SOCIAL,
        "source is a social site or medium is social",
        lambda v: v.source in SOCIAL_SOURCES or v.medium in SOCIAL_MEDIA,
    ),
    (
        Channel.ORGANIC_VIDEO,
        "source is a video site or medium contains video",
        lambda v: v.source in VIDEO_SOURCES or "video" in v.medium,
    ),
    (
        Channel.ORGANIC_SEARCH,
        "source is a search engine or medium is organic",
        lambda v: v.source in SEARCH_SOURCES or v.medium == "organic",
    ),
    (
        Channel.EMAIL,
        "source or medium is email",
        lambda v: v.source in EMAIL_WORDS or v.medium in EMAIL_WORDS,
    ),
    (Channel.AFFILIATES, "medium is affiliate", lambda v: v.medium in {"affiliate", "affiliates"}),
    (Channel.REFERRAL, "medium is referral, app or link", lambda v: v.medium in REFERRAL_MEDIA),
    (Channel.AUDIO, "medium is audio", lambda v: v.medium == "audio"),
    (Channel.SMS, "source or medium is sms", lambda v: "sms" in {v.source, v.medium}),
    (
        Channel.MOBILE_PUSH,
        "medium ends with push or names mobile or notification, or source is firebase",
        _mobile_push,
    ),
)
"""(channel, the rule in words, the rule): in GA4's order, the first that holds wins."""


def channel_of(source: str | None, medium: str | None, campaign: str | None = None) -> Channel:
    visit = Visit.of(source, medium, campaign)
    for channel, _, holds in RULES:
        if holds(visit):
            return channel
    return Channel.UNASSIGNED


def rules_table() -> str:
    """The rules as docs/enrichment.md shows them (a unit test compares)."""
    rows = [
        f"| {n} | {channel.value} | {words} |" for n, (channel, words, _) in enumerate(RULES, 1)
    ]
    rows.append(f"| {len(RULES) + 1} | {Channel.UNASSIGNED.value} | no rule above holds |")
    return "\n".join(["| # | channel | when |", "| --- | --- | --- |", *rows])
