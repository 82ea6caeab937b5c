"""Traffic that looks like the world's: the browsers, tablets and crawlers visitors come with,
the links they land from (search, social, webmail, tagged campaigns, ad clicks, other sites),
and the countries their addresses are in, each with the answer the enrichment must give.

The answers are written here by hand, from what each string or link is (a Googlebot is a
bot, a `gclid` landing is Paid Search), never computed by `clickstream.kernel.enrichment`: the
manifest's truth per dimension (`producer.manifest`) is then a check of the enrichment, not
a copy of it. A unit test holds each table to the RIR data (addresses) and the other way
round is the end-to-end test's job.

A session's draw from these tables comes from its own generator (seeded by the run's seed and
the session id), so the rest of a seed's traffic (its pages, clicks, times) is what it was.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Agent:
    user_agent: str
    device_type: str
    browser: str
    is_bot: bool = False


@dataclass(frozen=True, slots=True)
class Landing:
    """How a visit arrives: the referrer of its first page view and the query its landing
    URL carries, and what they say."""

    weight: float
    referrer: str | None
    query: str
    source: str
    medium: str
    channel: str


@dataclass(frozen=True, slots=True)
class Country:
    weight: float
    code: str
    address: str
    """A public address the registries assigned to `code` (a well-known server's)."""


DEVICES: Final = (
    # (viewport width, height, agent): the generator's five devices, desktops first; what
    # `producer.generator` draws a person's device from (one draw, as before).
    (1920, 1080, Agent(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36", "desktop", "Chrome")),
    (1440, 900, Agent(
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Safari/605.1.15", "desktop", "Safari")),
    (1366, 768, Agent(
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "desktop", "Firefox")),
    (390, 844, Agent(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "mobile", "Mobile Safari")),
    (412, 915, Agent(
        "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36", "mobile", "Chrome Mobile")),
)  # fmt: skip
TABLETS: Final = (
    (820, 1180, Agent(
        "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.6 Mobile/15E148 Safari/604.1", "tablet", "Mobile Safari")),
    (800, 1280, Agent(
        "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36", "tablet", "Chrome")),
)  # fmt: skip
IN_APP: Final = (
    (390, 844, Agent(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/470.0.0.44.109;FBBV/614080433]",
        "mobile", "Facebook")),
)  # fmt: skip
CRAWLERS: Final = (
    Agent(
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "bot", "Googlebot", is_bot=True),
    Agent(
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "bot", "bingbot", is_bot=True),
    Agent(
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/131.0.0.0 Safari/537.36", "bot", "HeadlessChrome", is_bot=True),
)  # fmt: skip
SCRIPTS: Final = (
    # The bot anomaly's scripts (`--bots`, taken in turn): what their agents say. The last
    # passes for a person's Chrome: only the workers' bot rule, judging how the session
    # behaves, makes it a bot (`is_bot` in the `sessions` and `events` views).
    Agent("python-requests/2.32.3", "bot", "Python Requests", is_bot=True),
    Agent("Mozilla/5.0 (compatible; scraper/1.0)", "bot", "scraper", is_bot=True),
    Agent(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36", "desktop", "Chrome"),
)  # fmt: skip

AGENTS: Final = {
    agent.user_agent: agent
    for agent in [a for _, _, a in DEVICES + TABLETS + IN_APP] + list(CRAWLERS + SCRIPTS)
}
"""Every agent the generator sends, by its string."""

DIRECT: Final = Landing(30, None, "", "(direct)", "(none)", "Direct")
LANDINGS: Final = (
    DIRECT,
    Landing(20, "https://www.google.com/", "", "google", "organic", "Organic Search"),
    Landing(4, "https://www.bing.com/", "", "bing", "organic", "Organic Search"),
    Landing(3, "https://duckduckgo.com/", "", "duckduckgo", "organic", "Organic Search"),
    Landing(4, "https://news.ycombinator.com/", "", "news.ycombinator.com", "social",
            "Organic Social"),
    Landing(4, "https://t.co/x1", "", "twitter", "social", "Organic Social"),
    Landing(3, "https://l.facebook.com/", "fbclid=IwAR0x", "facebook", "social",
            "Organic Social"),
    Landing(3, "https://mail.google.com/", "", "mail.google.com", "email", "Email"),
    Landing(5, None, "utm_source=newsletter&utm_medium=email&utm_campaign=december",
            "newsletter", "email", "Email"),
    Landing(6, "https://www.google.com/", "gclid=Cj0KCQiA", "google", "cpc", "Paid Search"),
    Landing(2, "https://www.bing.com/", "msclkid=7d1f", "bing", "cpc", "Paid Search"),
    Landing(3, None, "utm_source=facebook&utm_medium=paid_social&utm_campaign=winter",
            "facebook", "paid_social", "Paid Social"),
    Landing(2, None, "utm_source=partner&utm_medium=affiliate", "partner", "affiliate",
            "Affiliates"),
    Landing(2, None, "utm_source=adnet&utm_medium=display&utm_campaign=winter", "adnet",
            "display", "Display"),
    Landing(2, "https://www.youtube.com/", "", "youtube", "referral", "Organic Video"),
    Landing(7, "https://blog.example.org/a-review", "", "blog.example.org", "referral",
            "Referral"),
)  # fmt: skip
"""How people land, with GA4's answer for each (its default channel group's definitions)."""

COUNTRIES: Final = (
    Country(30, "US", "8.8.8.8"),
    Country(12, "GB", "212.58.244.1"),
    Country(12, "DE", "217.160.0.1"),
    Country(8, "FR", "80.67.169.12"),
    Country(6, "NL", "193.0.6.139"),
    Country(6, "JP", "202.12.27.33"),
    Country(5, "BR", "200.160.2.3"),
    Country(4, "AU", "1.1.1.1"),
    Country(3, "CH", "130.59.31.80"),
    Country(4, "US", "2001:4860:4860::8888"),
)
"""Where visitors are: a country and one of its addresses, for the collector to resolve."""

TABLET_SHARE: Final = 0.08
IN_APP_SHARE: Final = 0.03
CRAWLER_SHARE: Final = 0.04


@dataclass(frozen=True, slots=True)
class SessionWorld:
    """What a person's (or crawler's) session is drawn to be."""

    viewport: tuple[int, int] | None
    """A tablet's or an in-app browser's viewport; None: the device the generator drew."""
    agent: Agent | None
    landing: Landing
    country: Country


def session_world(seed: int, session_id: str) -> SessionWorld:
    """The draw of one session, from its own generator."""
    rng = random.Random(f"world:{seed}:{session_id}")
    roll = rng.random()
    viewport: tuple[int, int] | None = None
    agent: Agent | None = None
    if roll < CRAWLER_SHARE:
        agent = rng.choice(CRAWLERS)
        viewport = (1280, 720)
    elif roll < CRAWLER_SHARE + TABLET_SHARE:
        width, height, agent = rng.choice(TABLETS)
        viewport = (width, height)
    elif roll < CRAWLER_SHARE + TABLET_SHARE + IN_APP_SHARE:
        width, height, agent = rng.choice(IN_APP)
        viewport = (width, height)
    landing = rng.choices(LANDINGS, weights=[item.weight for item in LANDINGS])[0]
    if agent is not None and agent.is_bot:
        landing = DIRECT  # crawlers come without a referrer
    country = rng.choices(COUNTRIES, weights=[item.weight for item in COUNTRIES])[0]
    return SessionWorld(viewport, agent, landing, country)


def country_of_session(seed: int, session_id: str) -> Country:
    """Where the generator's visitor of this session is (`SessionWorld.country`)."""
    return session_world(seed, session_id).country


def landing_of(page: str, referrer: str | None) -> Landing:
    """The landing a session's first page view shows (its referrer and its URL's query): the
    generator's own table, read back."""
    query = urlsplit(page).query
    for landing in LANDINGS:
        if landing.referrer == referrer and landing.query == query:
            return landing
    if referrer is None and not query:
        return DIRECT
    raise KeyError(f"no landing of the generator's arrives from {referrer!r} at {page!r}")
