"""Enrichment (issue 40, its pure part): user agents as browser, OS, device type and bot;
GA4's default channel group; a session's acquisition from its landing."""

from __future__ import annotations

import pytest

from clickstream.kernel.enrichment.acquisition import acquisition_of, registrable_domain
from clickstream.kernel.enrichment.channels import RULES, Channel, channel_of, rules_table
from clickstream.kernel.enrichment.country import country_of
from clickstream.kernel.enrichment.useragent import DeviceType, agent_of, crawler_list
from clickstream.kernel.paths import PROJECT_ROOT

# -- user agents ------------------------------------------------------------------------------

REAL_AGENTS = [
    # (what, user agent, browser, major, os, device type)
    ("Chrome on Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome", "131", "Windows", "desktop"),
    ("Edge on Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge", "131", "Windows", "desktop"),
    ("Safari on a Mac", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", "Safari", "17", "Mac OS X", "desktop"),
    ("Firefox on Ubuntu", "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox", "133", "Ubuntu", "desktop"),
    ("Chrome on a Chromebook", "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome", "131", "Chrome OS", "desktop"),
    ("Safari on an iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Mobile Safari", "17", "iOS", "mobile"),
    ("Chrome on a Pixel", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", "Chrome Mobile", "131", "Android", "mobile"),
    ("Samsung Internet", "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", "Samsung Internet", "26", "Android", "mobile"),
    ("Facebook's in-app browser", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/470.0.0.36.105;FBBV/617069934;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.5;FBSS/3;FBCR/;FBID/phone;FBLC/en_US;FBOP/5]", "Facebook", "470", "iOS", "mobile"),
    ("Safari on an iPad", "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Mobile Safari", "17", "iOS", "tablet"),
    ("Chrome on an Android tablet", "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome", "131", "Android", "tablet"),
    ("Silk on a Kindle Fire", "Mozilla/5.0 (Linux; Android 11; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/120.3.1 like Chrome/120.0.6099.230 Safari/537.36", "Amazon Silk", "120", "Android", "tablet"),
    ("a Samsung TV", "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/4.0 Chrome/76.0.3809.146 TV Safari/537.36", "Samsung Internet", "4", "Tizen", "other"),
]  # fmt: skip

BOTS = [
    ("Googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
    ("Bingbot", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"),
    ("GPTBot", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)"),
    ("headless Chrome", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36"),
    ("PhantomJS", "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1"),
    ("curl", "curl/8.4.0"),
    ("python-requests", "python-requests/2.32.3"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("user_agent", "browser", "major", "os", "device_type"),
    [case[1:] for case in REAL_AGENTS],
    ids=[case[0] for case in REAL_AGENTS],
)
def test_a_real_browsers_agent_gives_its_columns(
    user_agent: str, browser: str, major: str, os: str, device_type: str
) -> None:
    agent = agent_of(user_agent)
    assert (agent.browser, agent.browser_version, agent.os) == (browser, major, os)
    assert agent.device_type == DeviceType(device_type)
    assert not agent.is_bot


@pytest.mark.parametrize("user_agent", [case[1] for case in BOTS], ids=[c[0] for c in BOTS])
def test_crawlers_and_automation_are_bots(user_agent: str) -> None:
    agent = agent_of(user_agent)
    assert agent.is_bot
    assert agent.device_type is DeviceType.BOT


def test_every_example_of_the_crawler_list_is_a_bot() -> None:
    # The list's own examples of each pattern (2,000 and more real crawler strings).
    examples = [agent for entry in crawler_list() for agent in entry.get("instances", [])]
    assert len(examples) > 1000
    assert [agent for agent in examples if not agent_of(agent).is_bot] == []


def test_an_empty_agent_says_nothing() -> None:
    agent = agent_of("")
    assert (agent.browser, agent.os, agent.device_type, agent.is_bot) == (
        None,
        None,
        DeviceType.OTHER,
        False,
    )


# -- channels ---------------------------------------------------------------------------------

CHANNEL_CASES = [
    # (source, medium, campaign, channel): one or more per rule of GA4's, in its order
    ("(direct)", "(none)", None, Channel.DIRECT),
    ("(direct)", "(not set)", None, Channel.DIRECT),
    ("google", "cpc", "pmax cross-network q4", Channel.CROSS_NETWORK),
    ("google", "cpc", "shopping feed", Channel.PAID_SHOPPING),
    ("amazon", "paid", None, Channel.PAID_SHOPPING),
    ("google", "cpc", None, Channel.PAID_SEARCH),
    ("bing", "ppc", None, Channel.PAID_SEARCH),
    ("facebook", "paid_social", None, Channel.PAID_SOCIAL),
    ("LinkedIn", "CPC", None, Channel.PAID_SOCIAL),
    ("youtube", "cpv", None, Channel.PAID_VIDEO),
    ("partner-network", "display", None, Channel.DISPLAY),
    ("adnet", "banner", None, Channel.DISPLAY),
    ("newsletter-partner", "cpc", None, Channel.PAID_OTHER),
    ("adnet", "retargeting", None, Channel.PAID_OTHER),
    ("etsy", "referral", None, Channel.ORGANIC_SHOPPING),
    ("facebook", "social", None, Channel.ORGANIC_SOCIAL),
    ("reddit.com", "referral", None, Channel.ORGANIC_SOCIAL),
    ("someforum", "social-network", None, Channel.ORGANIC_SOCIAL),
    ("youtube", "referral", None, Channel.ORGANIC_VIDEO),
    ("somesite", "video", None, Channel.ORGANIC_VIDEO),
    ("google", "organic", None, Channel.ORGANIC_SEARCH),
    ("duckduckgo", "referral", None, Channel.ORGANIC_SEARCH),
    ("newsletter", "email", None, Channel.EMAIL),
    ("e-mail", "(not set)", None, Channel.EMAIL),
    ("partner", "affiliate", None, Channel.AFFILIATES),
    ("blog.example.org", "referral", None, Channel.REFERRAL),
    ("app-store", "app", None, Channel.REFERRAL),
    ("podcast", "audio", None, Channel.AUDIO),
    ("sms", "(not set)", None, Channel.SMS),
    ("firebase", "(not set)", None, Channel.MOBILE_PUSH),
    ("onesignal", "web-push", None, Channel.MOBILE_PUSH),
    ("newsletter", "(not set)", None, Channel.UNASSIGNED),
    ("(direct)", "email", None, Channel.EMAIL),
]


@pytest.mark.parametrize(("source", "medium", "campaign", "channel"), CHANNEL_CASES)
def test_the_channel_is_ga4s_first_rule_that_holds(
    source: str, medium: str, campaign: str | None, channel: Channel
) -> None:
    assert channel_of(source, medium, campaign) is channel


def test_every_rule_is_reached_by_a_case() -> None:
    reached = {case[3] for case in CHANNEL_CASES}
    assert {channel for channel, _, _ in RULES} <= reached


# -- acquisition ------------------------------------------------------------------------------

SITE = "https://shop.example.com"
ACQUISITION_CASES = [
    # (what, landing, referrer, Segment campaign, source, medium, channel)
    ("typed in", f"{SITE}/", None, None, "(direct)", "(none)", Channel.DIRECT),
    ("UTM-tagged newsletter", f"{SITE}/?utm_source=newsletter&utm_medium=email&utm_campaign=dec", None, None, "newsletter", "email", Channel.EMAIL),
    ("UTM paid social", f"{SITE}/p?utm_source=facebook&utm_medium=cpc", "https://l.facebook.com/", None, "facebook", "cpc", Channel.PAID_SOCIAL),
    ("Segment's campaign", f"{SITE}/", None, {"source": "google", "medium": "cpc", "name": "brand"}, "google", "cpc", Channel.PAID_SEARCH),
    ("Google Ads click", f"{SITE}/?gclid=abc123", "https://www.google.com/", None, "google", "cpc", Channel.PAID_SEARCH),
    ("Microsoft Ads click", f"{SITE}/?msclkid=x", None, None, "bing", "cpc", Channel.PAID_SEARCH),
    ("fbclid is organic social", f"{SITE}/?fbclid=IwAR", "https://m.facebook.com/", None, "facebook", "social", Channel.ORGANIC_SOCIAL),
    ("Google search", f"{SITE}/", "https://www.google.co.uk/", None, "google", "organic", Channel.ORGANIC_SEARCH),
    ("DuckDuckGo", f"{SITE}/", "https://duckduckgo.com/", None, "duckduckgo", "organic", Channel.ORGANIC_SEARCH),
    ("Brave search", f"{SITE}/", "https://search.brave.com/search?q=x", None, "brave", "organic", Channel.ORGANIC_SEARCH),
    ("a tweet", f"{SITE}/", "https://t.co/abc", None, "twitter", "social", Channel.ORGANIC_SOCIAL),
    ("a YouTube description", f"{SITE}/", "https://www.youtube.com/watch?v=1", None, "youtube", "referral", Channel.ORGANIC_VIDEO),
    ("Gmail", f"{SITE}/", "https://mail.google.com/", None, "mail.google.com", "email", Channel.EMAIL),
    ("a blog", f"{SITE}/", "https://blog.other.org/post", None, "blog.other.org", "referral", Channel.REFERRAL),
    ("the site's own other host", f"{SITE}/", "https://www.example.com/", None, "(direct)", "(none)", Channel.DIRECT),
    ("a bad referrer", f"{SITE}/", "not a url", None, "(direct)", "(none)", Channel.DIRECT),
]  # fmt: skip


@pytest.mark.parametrize(
    ("landing", "referrer", "campaign", "source", "medium", "channel"),
    [case[1:] for case in ACQUISITION_CASES],
    ids=[case[0] for case in ACQUISITION_CASES],
)
def test_a_sessions_acquisition_from_its_landing(
    landing: str,
    referrer: str | None,
    campaign: dict[str, str] | None,
    source: str,
    medium: str,
    channel: Channel,
) -> None:
    acquisition = acquisition_of(landing, referrer, campaign)
    assert (acquisition.source, acquisition.medium, acquisition.channel) == (
        source,
        medium,
        channel,
    )


def test_the_campaign_fields_come_from_the_landing() -> None:
    landing = f"{SITE}/?utm_source=x&utm_medium=cpc&utm_campaign=c&utm_term=t&utm_content=v"
    found = acquisition_of(landing, "https://www.google.com/")
    assert (found.campaign, found.term, found.content, found.referrer_host) == (
        "c",
        "t",
        "v",
        "google.com",
    )


@pytest.mark.parametrize(
    ("host", "domain"),
    [("news.bbc.co.uk", "bbc.co.uk"), ("l.facebook.com", "facebook.com"), ("127.0.0.1", "127.0.0.1"),
     ("localhost", "localhost"), ("t.co", "t.co")],
)  # fmt: skip
def test_registrable_domains(host: str, domain: str) -> None:
    assert registrable_domain(host) == domain


def test_docs_show_the_rules_as_they_are() -> None:
    docs = (PROJECT_ROOT / "docs" / "enrichment.md").read_text()
    written = docs.split("<!-- rules: written by", 1)[1].split("-->", 1)[1]
    assert written.split("<!-- /rules -->", 1)[0].strip() == rules_table()


# -- country ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "country"),
    [
        ("8.8.8.8", "US"),  # Google's resolver, ARIN
        ("1.1.1.1", "AU"),  # APNIC's research block
        ("193.0.0.1", "NL"),  # RIPE NCC itself
        ("200.160.2.3", "BR"),  # LACNIC, registro.br
        ("41.0.0.1", "ZA"),  # AFRINIC
        ("2001:4860:4860::8888", "US"),
        ("::ffff:8.8.8.8", "US"),  # IPv4-mapped, as a dual-stack socket reports it
        ("8.8.8.8:443", "US"),
        ("[2001:4860:4860::8888]:443", "US"),
        (" 81.2.69.142 ", "GB"),
        ("10.0.0.1", None),  # private
        ("192.168.1.20", None),
        ("100.64.0.1", None),  # carrier-grade NAT
        ("127.0.0.1", None),
        ("::1", None),
        ("169.254.1.1", None),
        ("0.0.0.0", None),
        ("not an address", None),
        ("", None),
        (None, None),
    ],
)
def test_an_address_is_only_its_country(address: str | None, country: str | None) -> None:
    assert country_of(address) == country
