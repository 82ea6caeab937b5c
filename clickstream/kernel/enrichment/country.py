"""A client address as a country, and nothing more: the ISO 3166-1 alpha-2 code of the
country a Regional Internet Registry assigned the address's block to. Pure.

The lookup is `iptocc`'s (MIT OR Apache-2.0, pinned): the five RIRs' delegation data
embedded in the wheel, so nothing is read or fetched at run time; a lookup takes about a
tenth of a microsecond. An assigned country is where the block's holder registered it, not
always where the visitor is: it agrees with commercial databases for about 95 % of IPv4
addresses (iptocc's own note, after Zander 2012). The data is refreshed by bumping the pin
(docs/enrichment.md). The address is never kept: callers put only the country in an event.
"""

from __future__ import annotations

import ipaddress

import iptocc


def parsed_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address alone: spaces, an IPv6 literal's brackets and a port taken off, an
    IPv4-mapped IPv6 address as its IPv4 one; None when it is no address."""
    text = text.strip()
    if text.startswith("["):  # [2001:db8::1]:443
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # 192.0.2.1:443
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def country_of(address: str | None) -> str | None:
    """The country of a public address; None for a private, loopback, shared or reserved
    one, one no registry assigned, or text that is no address."""
    parsed = parsed_address(address) if address else None
    if parsed is None or not parsed.is_global:
        return None
    return iptocc.country_code(str(parsed))
