"""`clickstream bench agents`: what reading a user agent costs, on real traffic's repetition
(the generator's, through `agent_of`'s cache) and on strings never seen (the crawler list's
2,000 real examples, the cache emptied first: a crawler inventing a string per request)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from clickstream.kernel.enrichment.useragent import agent_of, crawler_list
from clickstream.kernel.events import ClickEvent
from producer.generator import generate


@dataclass(frozen=True, slots=True)
class AgentCosts:
    traffic_events: int
    traffic_distinct_agents: int
    traffic_us_per_event: float
    """Each event's agent through the cache, the cache empty at the start."""
    new_strings: int
    new_us_per_string: float
    new_strings_per_second: float
    """Distinct strings, none cached: the parse itself."""
    compile_seconds: float
    """Once per process: the crawler list's 1,500 patterns as one expression."""

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def crawler_examples() -> list[str]:
    return sorted({agent for entry in crawler_list() for agent in entry.get("instances", [])})


def run(events: int, seed: int) -> AgentCosts:
    records, _ = generate(seed, datetime(2026, 12, 7, 9, tzinfo=UTC), events)
    agents = [r.user_agent or "" for r in records if isinstance(r, ClickEvent)]
    # The crawler list's expression is compiled once, at the first agent a process reads
    # (`compile_seconds`): not a cost of any one event.
    started = time.process_time()
    agent_of("warm-up")
    compiled = time.process_time() - started
    agent_of.cache_clear()
    started = time.process_time()
    for agent in agents:
        agent_of(agent)
    traffic = time.process_time() - started
    strings = crawler_examples()
    agent_of.cache_clear()
    started = time.process_time()
    for agent in strings:
        agent_of(agent)
    fresh = time.process_time() - started
    agent_of.cache_clear()
    return AgentCosts(
        traffic_events=len(agents),
        traffic_distinct_agents=len(set(agents)),
        traffic_us_per_event=round(traffic / len(agents) * 1e6, 3),
        new_strings=len(strings),
        new_us_per_string=round(fresh / len(strings) * 1e6, 1),
        new_strings_per_second=round(len(strings) / fresh),
        compile_seconds=round(compiled, 3),
    )
