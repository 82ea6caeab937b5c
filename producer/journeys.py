"""Planted journeys: people whose way through a known funnel is written here by hand, so that
the demo's funnels have an exact truth (issue 42).

The funnel is `PLANTED_FUNNEL` (`/tour`, `/signup`, a pro plan's `Signed Up`), pages and an
event the generator's random traffic never produces: every count of the funnel comes from
these journeys alone. Each journey is one person of a `Kind`: one or two visits (the second
on the same device, or on another after the person logs in), and what each visit does. Each
kind says, by hand, how far each of its visits gets and how far the person gets across them
(`docs/reports.md`, Funnels, says what counts): the manifest adds these up
(`producer.manifest.FunnelTruth`), never by running a funnel.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

PLANTED_FUNNEL: Final = ("/tour", "/signup", "event:Signed Up[plan=pro]")
PLANTED_WITHIN: Final = "1d"
SESSION_PREFIX: Final = "j-"

IDENTIFY: Final = "identify"
"""A visit's step that logs the person in: an `identify` event, and the user id on every
event of the visit after it."""
SIGNED_UP_PRO: Final = "Signed Up:pro"
SIGNED_UP_FREE: Final = "Signed Up:free"
EVENTS: Final = {SIGNED_UP_PRO: ("Signed Up", "pro"), SIGNED_UP_FREE: ("Signed Up", "free")}


@dataclass(frozen=True, slots=True)
class Visit:
    steps: tuple[str, ...]
    """Pages (a path), `IDENTIFY`, or a key of `EVENTS`, in order."""
    device: str = "laptop"
    """`laptop` or `phone`: a visit on the other device has its own anonymous id."""
    minutes_after: float = 0.0
    """When the visit starts, after the journey's first."""


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    visits: tuple[Visit, ...]
    visit_reach: tuple[int, ...]
    """How many of the funnel's steps each visit reaches on its own."""
    person_reach: int
    """How many the person reaches across their visits (all within a day)."""
    identified: bool = False


KINDS: Final = (
    Kind("looks at the tour", (Visit(("/", "/tour")),), (1,), 1),
    Kind("tour then signup", (Visit(("/tour", "/pricing", "/signup")),), (2,), 2),
    Kind("signs up for pro", (Visit(("/tour", "/signup", SIGNED_UP_PRO)),), (3,), 3),
    # The third step's condition is a pro plan: a free one stops at the second.
    Kind("signs up for free", (Visit(("/tour", "/signup", SIGNED_UP_FREE)),), (2,), 2),
    # Steps in the wrong order: the signup before the tour counts for nothing.
    Kind("signup before the tour", (Visit(("/signup", "/tour")),), (1,), 1),
    # Steps repeated count once, other pages between are allowed.
    Kind(
        "goes back and forth",
        (Visit(("/tour", "/tour", "/signup", "/tour", "/signup", SIGNED_UP_PRO)),),
        (3,),
        3,
    ),
    # The tour on a phone, the signup on the laptop after logging in there: per visit one
    # step and none, per person all three (the login links the phone's anonymous id too).
    Kind(
        "converts on a second device",
        (
            Visit(("/tour", IDENTIFY), device="phone"),
            Visit(("/", IDENTIFY, "/signup", SIGNED_UP_PRO), minutes_after=4),
        ),
        (1, 0),
        3,
        identified=True,
    ),
    # Back on the same device (the same anonymous id), never logged in.
    Kind(
        "comes back to sign up",
        (Visit(("/tour",)), Visit(("/signup", SIGNED_UP_PRO), minutes_after=3)),
        (1, 0),
        3,
    ),
)


def kind_of(journey: int) -> Kind:
    return KINDS[journey % len(KINDS)]


def session_id_of(journey: int, visit: int) -> str:
    return f"{SESSION_PREFIX}{journey:04d}-{visit}"


def user_id_of(journey: int) -> str | None:
    """The user id a journey's person logs in with; None when they never do."""
    return f"u-j{journey:04d}" if kind_of(journey).identified else None


def journey_of(session_id: str) -> int | None:
    """The journey a planted session belongs to; None for any other session."""
    if not session_id.startswith(SESSION_PREFIX):
        return None
    number, _, _ = session_id.removeprefix(SESSION_PREFIX).partition("-")
    return int(number) if number.isdigit() else None


def reached(journeys: Iterable[int]) -> tuple[list[int], list[int], int]:
    """Per step of `PLANTED_FUNNEL`, the visits and the people that reach it, and how many
    of those people reach the last step across two devices."""
    steps = len(PLANTED_FUNNEL)
    visits = [0] * steps
    people = [0] * steps
    across_devices = 0
    for journey in journeys:
        kind = kind_of(journey)
        for reach in kind.visit_reach:
            for step in range(reach):
                visits[step] += 1
        for step in range(kind.person_reach):
            people[step] += 1
        devices = {visit.device for visit in kind.visits}
        if len(devices) > 1 and kind.person_reach == steps:
            across_devices += 1
    return visits, people, across_devices
