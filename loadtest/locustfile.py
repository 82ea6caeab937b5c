"""Load-test a deployed collector with Locust (https://locust.io), as visitors' browsers would.

    CLICKSTREAM_WRITE_KEY=... locust -f loadtest/locustfile.py --host https://COLLECTOR

Each simulated visitor keeps a session: a page view, a few clicks and a scroll, flushed in
small batches to /v1/events as clickstream.js does; a share of visitors use a Segment SDK
(analytics.js' /v1/batch). A 503 is the collector's back-pressure: it is counted as a
failure and the batch is sent again, with the same event ids, after its Retry-After.
Every event lands in the stream and in the tables: load-test a stack made for it.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from locust import HttpUser, between, task

WRITE_KEY = os.environ.get("CLICKSTREAM_WRITE_KEY", "local-write-key")
PAGES = ["/", "/pricing", "/docs", "/blog/launch", "/products/shoes", "/checkout"]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Visitor(HttpUser):
    """A browser with clickstream.js: batches of events per session."""

    wait_time = between(1, 4)
    weight = 4

    def on_start(self) -> None:
        self.session_id = str(uuid.uuid4())
        self.anonymous_id = str(uuid.uuid4())
        self.page = random.choice(PAGES)

    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {
            "event_id": str(uuid.uuid4()),
            "type": kind,
            "session_id": self.session_id,
            "anonymous_id": self.anonymous_id,
            "page": self.page,
            "timestamp": now(),
            "viewport_width": 1280,
            "viewport_height": 800,
            **fields,
        }

    def send(self, events: list[dict[str, Any]], name: str) -> None:
        body = json.dumps({"writeKey": WRITE_KEY, "sent_at": now(), "events": events})
        for _ in range(5):
            with self.client.post(
                "/v1/events",
                data=body,
                headers={"Content-Type": "text/plain"},
                name=name,
                catch_response=True,
            ) as response:
                if response.status_code == 200:
                    response.success()
                    return
                response.failure(f"{response.status_code}: {response.text[:200]}")
                if response.status_code != 503:
                    return
                time.sleep(float(response.headers.get("Retry-After", "1")))

    @task(3)
    def browse(self) -> None:
        self.page = random.choice(PAGES)
        events = [self.event("page_view")]
        for _ in range(random.randint(0, 4)):
            events.append(self.event("click", x=random.randint(0, 1280), y=random.randint(0, 3000)))
        if random.random() < 0.6:
            events.append(self.event("scroll", x=0, y=random.randint(800, 3000)))
        self.send(events, "/v1/events (visitor)")


class SegmentVisitor(HttpUser):
    """A site with analytics.js pointed at the collector: /v1/batch, key in the body."""

    wait_time = between(2, 6)
    weight = 1

    def on_start(self) -> None:
        self.anonymous_id = str(uuid.uuid4())

    @task
    def page_and_track(self) -> None:
        path = random.choice(PAGES)
        context = {"page": {"path": path}, "userAgent": "locust"}
        common = {"anonymousId": self.anonymous_id, "timestamp": now(), "context": context}
        batch = [
            {**common, "type": "page", "messageId": str(uuid.uuid4())},
            {**common, "type": "track", "event": "Added to Cart", "messageId": str(uuid.uuid4())},
        ]
        body = {"batch": batch, "sentAt": now(), "writeKey": WRITE_KEY}
        self.client.post("/v1/batch", data=json.dumps(body), headers={"Content-Type": "text/plain"})
