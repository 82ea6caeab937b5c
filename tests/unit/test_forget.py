"""The erasure's pure parts: naming a request without its ids, what a dead letter carries,
and a receipt that keeps what was first found."""

from __future__ import annotations

import pytest

from insights.forget import ForgetError, Person, Receipt, carries_any, hashed


def test_a_request_is_named_by_its_ids_and_tells_nothing_of_them() -> None:
    person = Person(user_ids=("u-1",), anonymous_ids=("a-9", "a-9"))
    same = Person(anonymous_ids=("a-9",), user_ids=("u-1",))
    assert person.request("salt") == same.request("salt")
    assert person.request("salt") != person.request("other salt")
    assert "u-1" not in person.request("salt")
    assert hashed("salt", "s-1") != hashed("salt", "s-2")


def test_a_person_needs_an_id() -> None:
    with pytest.raises(ForgetError, match="name the person"):
        Person()


def test_a_dead_letter_carries_an_id_anywhere_in_its_bytes() -> None:
    assert carries_any(b'{"anonymousId":"a-9"}', [b"a-9"])
    assert not carries_any(b'{"anonymousId":"a-8"}', [b"a-9", b"u-1"])


def test_a_receipt_keeps_what_was_first_found_and_sums_it() -> None:
    receipt = Receipt("r", "now")
    receipt.found(receipt.raw_objects, "raw/a", 5)
    receipt.found(receipt.raw_objects, "raw/a", 2)  # a later run finds less: the first stands
    receipt.found(receipt.raw_objects, "raw/b", 0)  # nothing there: not recorded
    receipt.session_items.append("h")
    totals = receipt.totals()
    assert totals["raw_objects_rewritten"] == 1
    assert totals["raw_events_removed"] == 5
    assert totals["session_items_deleted"] == 1
    assert Receipt.from_dict(receipt.as_dict()).totals() == totals
