"""Strict JSON: the one rule for what an event's text may be, at the collector and the workers.

An event is JSON text as RFC 8259 defines it, read the way every strict reader downstream
(Athena's JSON SerDe, DuckDB, Spark, a browser's `JSON.parse` on the archive) reads it:

- UTF-8 (the caller decodes the bytes; a byte order mark is not JSON text);
- no `NaN`, `Infinity` or `-Infinity`: they are Python's extension, not JSON;
- every number within a double's range (magnitude at most 1.7976931348623157e308): `1e400`
  and a 400-digit integer are refused, where Python would read `1e400` as infinity and
  write it back as `Infinity`; integers inside the range are kept exactly as sent, digits
  and all (2**64 + 1 too); other numbers are read as the nearest double (`1e-400` is 0.0);
- no string or object name holding an unpaired UTF-16 surrogate (`"\\ud800"`): it has no
  UTF-8 form, so it could not be written again;
- objects and arrays nested at most `MAX_NESTING` deep;
- a name given twice in one object is allowed (RFC 8259 only says names SHOULD be unique):
  the last one counts, as `JSON.parse`, Python, pydantic and msgspec all read it, and the
  collector writes it once.

`loads` reads a whole document with the non-JSON parts kept in place as `Unrepresentable`
markers, so that a batch's one bad event is refused alone, not its whole request; `problem`
says what is wrong with one parsed value; `check` is both on one text (the workers'
decoder); `dumps` never writes what `check` refuses. Pure.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Final

MAX_NESTING: Final = 64
"""How deep an event may nest objects and arrays (the event itself is level 1). No SDK
nests more than a few levels; Python's serialiser fails near 1,000 and pydantic's parser
near 200, so the contract's own bound is well inside both."""

_MAX_INTEGER_DIGITS: Final = 309
"""The largest double (~1.8e308) has 309 digits: an integer with more never fits, and one
with fewer always does. Checked on the text first, since Python refuses to read integers of
more than 4,300 digits at all (CVE-2020-10735's limit)."""


class NotStrictJson(ValueError):
    """A text, or a value parsed from one, that the strict rule refuses; `detail` says why
    (ASCII only, so that it can go into any answer or log line)."""

    def __init__(self, detail: str, *, too_deep: bool = False) -> None:
        self.detail = detail
        self.too_deep = too_deep
        super().__init__(detail)


@dataclass(frozen=True, slots=True)
class Unrepresentable:
    """What strict JSON refuses in a document, held by `loads` where it stood."""

    detail: str
    lenient: Any
    """What Python's own parser makes of it (`inf`, `nan`, the integer, the object): written
    in its place where a refused event is kept as a dead letter's excerpt."""


def _shown(text: str) -> str:
    return text if len(text) <= 32 else text[:32] + "..."


def _constant(text: str) -> Unrepresentable:
    return Unrepresentable(f"{text} is not JSON", float(text))


def _beyond_range(text: str, lenient: float | int) -> Unrepresentable:
    return Unrepresentable(f"the number {_shown(text)} is beyond a double's range", lenient)


def _number_with_fraction_or_exponent(text: str) -> float | Unrepresentable:
    value = float(text)
    return value if math.isfinite(value) else _beyond_range(text, value)


def _integer(text: str) -> int | Unrepresentable:
    digits = len(text) - text.startswith("-")
    if digits > _MAX_INTEGER_DIGITS:
        return _beyond_range(text, -math.inf if text.startswith("-") else math.inf)
    value = int(text)
    if digits == _MAX_INTEGER_DIGITS:
        try:
            float(value)
        except OverflowError:
            return _beyond_range(text, value)
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any] | Unrepresentable:
    value = dict(pairs)
    if len(value) == len(pairs):
        return value
    # A repeated name: the last value counts, but the text holds the others too, and a
    # strict reader (pydantic's among them) refuses the whole text for what they hold.
    for name, given in pairs:
        if value[name] is given:
            continue
        found = problem(given)
        if found is not None and not found.too_deep:  # its depth is judged where it stands
            return Unrepresentable(f"{found.detail} (in a value of a repeated name)", value)
    return value


def loads(text: str) -> Any:
    """A JSON document as Python values, with every constant or number strict JSON refuses
    kept as an `Unrepresentable` where it stood. Raises what `json.loads` raises for text
    that is not JSON at all (`json.JSONDecodeError`, `RecursionError`). Text, not bytes:
    Python reads bytes with unpaired surrogates let through, which are not UTF-8."""
    return json.loads(
        text,
        parse_constant=_constant,
        parse_float=_number_with_fraction_or_exponent,
        parse_int=_integer,
        object_pairs_hook=_object,
    )


def _unpaired_surrogate(text: str) -> str | None:
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"\\u{ord(text[error.start]):04x}"
    return None


def problem(value: Any) -> NotStrictJson | None:
    """Why a value `loads` returned is not strict JSON (the first reason found), or None.
    Iterative: the value may nest far deeper than the limit it is checked against."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if (surrogate := _unpaired_surrogate(item)) is not None:
                return NotStrictJson(f"a string holds the unpaired surrogate {surrogate}")
            continue
        if isinstance(item, Unrepresentable):
            return NotStrictJson(item.detail)
        if isinstance(item, float) and not math.isfinite(item):  # put there by Python code
            return NotStrictJson(f"{item} is not JSON")
        if isinstance(item, dict):
            children: list[Any] = [*item.keys(), *item.values()]
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth + 1 > MAX_NESTING:
            return NotStrictJson(f"nested deeper than {MAX_NESTING} levels", too_deep=True)
        stack.extend((child, depth + 1) for child in children)
    return None


def check(text: str) -> None:
    """Raise `NotStrictJson` unless `text` is strict JSON (`text` is already decoded UTF-8)."""
    try:
        value = loads(text)
    except json.JSONDecodeError as error:
        raise NotStrictJson(f"{error.msg} at line {error.lineno} column {error.colno}") from None
    except RecursionError:
        raise NotStrictJson("nested too deeply to read", too_deep=True) from None
    found = problem(value)
    if found is not None:
        raise found


def dumps(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON, or `NotStrictJson`: never NaN, Infinity, a marker or an
    unpaired surrogate written (Python's `json.dumps` writes the first three, and `.encode()`
    fails on the last). Nesting is not checked here: `check` does, on what is written."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return text.encode("utf-8")
    except (ValueError, TypeError, UnicodeEncodeError):
        found = problem(value)  # the walk only when something is wrong: it names what
        raise found or NotStrictJson("a value that is not JSON") from None


def lenient_dumps(value: Any) -> str:
    """`value` as Python's parser would have read it, for keeping what was refused: markers
    written as Python reads them (`Infinity`, the whole integer), unpaired surrogates as
    the escapes they came as. Text a strict reader refuses again, for the same reason."""
    text = json.dumps(
        value,
        separators=(",", ":"),
        ensure_ascii=False,
        default=lambda item: item.lenient if isinstance(item, Unrepresentable) else str(item),
    )
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")
