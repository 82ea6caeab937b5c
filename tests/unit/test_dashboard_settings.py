"""The dashboard's settings: which addresses count as loopback (no token needed), tokens."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from insights.settings import DashboardSettings, is_loopback


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.0.1", "::1", "localhost"])
def test_loopback_addresses_need_no_token(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.7", "dashboard.example.com"])
def test_every_other_address_needs_one(host: str) -> None:
    assert not is_loopback(host)


def test_a_short_token_is_refused_with_a_reason() -> None:
    with pytest.raises(ValidationError, match="16 characters"):
        DashboardSettings(token="short")
    assert DashboardSettings().host == "127.0.0.1"
