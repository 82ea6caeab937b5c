"""The official SDKs sites run, as the tests drive them: Segment's and RudderStack's Python
SDKs (pinned in the dev group), Segment's Node SDK through a small script, and analytics.js
2.0 on a page of its own (both pinned in infra/sdk, installed by the bootstrap into
.tools/sdk), with a recorder of what each reports to its error callback."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient

from clickstream.kernel.paths import PROJECT_ROOT

NODE_SDK = PROJECT_ROOT / ".tools/sdk/node_modules/@segment/analytics-node/dist/cjs/index.js"
NODE_SCRIPT = Path(__file__).parent / "sdk" / "analytics_node.cjs"


class NodeSdk:
    """analytics-node, driven through a small script: the calls are collected, and `join`
    runs node, which sends them, flushes, and reports the SDK's errors."""

    def __init__(self, key: str, host: str, on_error: Errors, **_: Any) -> None:
        self._input: dict[str, Any] = {"host": host, "writeKey": key, "events": []}
        self._errors = on_error

    def track(self, *, message_id: str, timestamp: datetime | None = None, **fields: Any) -> None:
        self._add("track", message_id, timestamp, fields)

    def page(self, *, message_id: str, **fields: Any) -> None:
        self._add("page", message_id, None, fields)

    def _add(self, call: str, message_id: str, at: datetime | None, fields: dict[str, Any]) -> None:
        renamed = {"user_id": "userId"}
        event = {renamed.get(k, k): v for k, v in fields.items()}
        event |= {"call": call, "messageId": message_id}
        if at is not None:
            event["timestamp"] = at.isoformat()
        self._input["events"].append(event)

    def flush(self) -> None:
        return

    def join(self) -> None:
        node = shutil.which("node")
        assert node, "node runs the Node SDK"
        done = subprocess.run(
            [node, str(NODE_SCRIPT), json.dumps(self._input)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "CLICKSTREAM_ANALYTICS_NODE": str(NODE_SDK)},
        )
        assert done.returncode == 0, done.stderr
        for error in json.loads(done.stdout)["errors"]:
            status = re.search(r"\[(\d{3})\]", error)
            self._errors(_Reported(int(status.group(1)) if status else None), [])


@dataclass
class _Reported(Exception):
    """What analytics-node reports of a failed batch: its status (it reads no body)."""

    status: int | None
    code: None = None


SDKS: dict[str, Any] = {"segment": SegmentClient, "rudder": RudderClient, "node": NodeSdk}
READS_THE_CODE = {"segment": True, "rudder": True, "node": False}


@dataclass
class Errors:
    """What an SDK told its `on_error` callback: (status, code) of each failed upload."""

    seen: list[tuple[int | None, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, error: Exception, batch: list[dict[str, Any]]) -> None:
        with self.lock:
            self.seen.append((getattr(error, "status", None), getattr(error, "code", None)))


def server_sdk(kind: str, key: str, host: str, errors: Errors) -> Any:
    """The SDK as a site configures it: its write key and its host, nothing else."""
    return SDKS[kind](key, host=host, on_error=errors, max_retries=5)


ANALYTICS_NEXT_BUNDLES = PROJECT_ROOT / ".tools/sdk/node_modules/@segment/analytics-next/dist/umd"

ANALYTICS_NEXT_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Shop</title><link rel="icon" href="data:,">
</head><body>
<script>
  // Where analytics.js 2.0 loads its own chunks from, if it needs any: this page's server.
  window.analytics = {{ _cdn: location.origin }};
</script>
<script src="/analytics-next/bundles/index.js"></script>
<script>
  window.sent = [];
  window.failures = [];
  const key = {key};
  const analytics = AnalyticsNext.AnalyticsBrowser.load(
    // cdnSettings: the settings analytics.js would otherwise fetch from Segment's CDN
    {{ writeKey: key, cdnSettings: {{ integrations: {{ "Segment.io": {{ apiKey: key }} }} }} }},
    {{ integrations: {{ "Segment.io": {{
      apiHost: {api_host}, protocol: "http", deliveryStrategy: {strategy}
    }} }} }}
  );
  const options = {options};
  window.track = (name, properties) => analytics.track(name, properties, options)
    .then((ctx) => window.sent.push(ctx.event.messageId))
    .catch((error) => window.failures.push(String(error)));
  window.page = () => analytics.page(undefined, undefined, {{}}, options)
    .then((ctx) => window.sent.push(ctx.event.messageId))
    .catch((error) => window.failures.push(String(error)));
</script>
</body></html>
"""


def analytics_next_site(
    root: Path,
    collector_url: str,
    key: str,
    strategy: dict[str, Any] | None = None,
    session_id: str | None = None,
) -> Path:
    """A site of its own with analytics.js 2.0 pointed at `collector_url` (its API host is
    `<host>/v1`), its bundle served by the site; `session_id` as `context.sessionId`."""
    assert (ANALYTICS_NEXT_BUNDLES / "index.js").is_file(), "the bootstrap installs analytics-next"
    shutil.copytree(ANALYTICS_NEXT_BUNDLES, root / "analytics-next" / "bundles")
    api_host = collector_url.removeprefix("http://") + "/v1"
    options = {"context": {"sessionId": session_id}} if session_id else {}
    (root / "index.html").write_text(
        ANALYTICS_NEXT_PAGE.format(
            key=json.dumps(key),
            api_host=json.dumps(api_host),
            strategy=json.dumps(strategy or {"strategy": "standard"}),
            options=json.dumps(options),
        )
    )
    return root
