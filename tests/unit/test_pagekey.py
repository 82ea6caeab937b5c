"""The canonical page key (clickstream.kernel.pagekey)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clickstream.kernel.pagekey import MAX_PAGE_KEY_BYTES, page_key


def test_a_path_loses_its_query_and_fragment() -> None:
    assert page_key("/pricing?utm_source=news&utm_medium=mail#plans") == "/pricing"
    assert page_key("/pricing#plans?x") == "/pricing"


def test_a_url_keeps_its_lower_cased_host_and_path() -> None:
    assert page_key("https://Shop.Example.COM/Pricing?gclid=1") == "shop.example.com/Pricing"
    assert page_key("http://user:secret@example.com:80") == "example.com/"
    assert page_key("https://example.com:8443/a") == "example.com:8443/a"


def test_allowed_query_parameters_are_kept_in_their_order() -> None:
    url = "/search?utm=1&q=red+shoes&page=2&sort=asc"
    assert page_key(url, {"q", "page"}) == "/search?q=red+shoes&page=2"
    assert page_key("/search?utm=1", {"q"}) == "/search"


def test_a_long_key_keeps_a_readable_prefix_and_stays_distinct() -> None:
    first = page_key("/" + "a" * 3000)
    second = page_key("/" + "a" * 2999 + "b")
    assert first.startswith("/aaaa")
    assert first != second
    assert len(first.encode()) <= MAX_PAGE_KEY_BYTES
    assert page_key("/" + "a" * 3000) == first


def test_a_cut_never_splits_a_character() -> None:
    key = page_key("/" + "é" * 2000)
    assert len(key.encode()) <= MAX_PAGE_KEY_BYTES
    key.encode().decode()  # valid UTF-8 throughout


paths = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=0, max_size=2047
).map(lambda rest: "/" + rest)
urls = st.builds(
    lambda host, rest: f"https://{host}/{rest}",
    st.from_regex(r"[A-Za-z0-9.-]{1,60}(:[0-9]{1,5})?", fullmatch=True),
    st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=1900),
)


@given(page=st.one_of(paths, urls))
def test_every_page_the_contract_allows_has_a_bounded_key(page: str) -> None:
    key = page_key(page)
    assert 0 < len(key.encode()) <= MAX_PAGE_KEY_BYTES
    assert page_key(page) == key
