"""End to end: `clickstream demo --keep` (local stack, collector, real KCL workers, the
demo's traffic with its injected anomalies) with the dashboard open in Debian's headless
chromium from before the traffic flows until it shows the manifest's numbers."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from clickstream.cli.sql import archive_location
from clickstream.kernel import aws, dynamo
from clickstream.kernel.pagekey import page_key
from clickstream.local.settings import LocalStackSettings
from clickstream.local.state import load_state
from clickstream.local.workers import LocalWorker
from clickstream.stores.page_stats import is_rollup, page_minute_items, rollup_rows
from clickstream.tools.verify import check_dimensions
from insights import archive_views
from insights import sql as engine
from producer import world
from producer.manifest import DIMENSIONS, Manifest
from tests.support.browser import ARTIFACTS, headless_chromium
from tests.support.e2e import clickstream
from tests.support.phases import phase, record
from tests.support.privacy import addresses_found, stored_texts
from tests.support.stack import free_port

pytestmark = pytest.mark.e2e

DEMO_DEADLINE_SECONDS = 600
"""The demo's whole run: stack up, 20,000 events through the collector, workers caught up."""
SETTLE_SECONDS = 180
"""After the demo: the settled minutes' re-reads and one heatmap refresh, with room."""

READ_PAGE = """
const minutes = {};
for (const group of document.querySelectorAll("#chart g.minute")) {
  const counts = {};
  for (const bar of group.querySelectorAll("rect")) counts[bar.dataset.type] = +bar.dataset.count;
  minutes[group.dataset.minute] = counts;
}
const rows = (id) => Array.from(document.querySelectorAll(`#${id} tbody tr`))
  .map((tr) => Array.from(tr.cells).map((td) => td.dataset.minute || td.textContent));
const image = document.getElementById("heatmap-image");
return {
  state: document.body.dataset.state,
  status: document.getElementById("status").textContent,
  as_of: document.body.dataset.asOf || null,
  errors: document.getElementById("errors").textContent,
  minutes: minutes,
  events: document.getElementById("events-total").textContent,
  rage: document.getElementById("rage-count").textContent,
  active: document.getElementById("active-sessions").textContent,
  pages: rows("top-pages"),
  alerts: rows("alerts"),
  dead_letters: rows("dead-letters"),
  shards: rows("shards"),
  heatmap: {page: image.dataset.page || null, clicks: image.dataset.clicks || null,
            drawn: !image.hidden && image.complete && image.naturalWidth > 0},
};
"""


@pytest.fixture
def demo_environment(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A stack of the test's own: its state dir and free loopback ports."""
    variables = {
        "CLICKSTREAM_LOCAL_STATE_DIR": str(tmp_path / "state"),
        "CLICKSTREAM_LOCAL_STACK_NAME": "e2edashboard",
        **{
            f"CLICKSTREAM_LOCAL_{name}_PORT": str(free_port())
            for name in ("MOTO", "KINESIS", "KINESIS_TLS", "COLLECTOR", "DASHBOARD")
        },
        # So the heatmap catches up within the test's wait (default: once a minute).
        "CLICKSTREAM_DASHBOARD_HEATMAP_REFRESH_SECONDS": "10",
        # forget waits for the collector to read the list (the workers have stopped by then).
        "CLICKSTREAM_SUPPRESSION_REFRESH_SECONDS": "1",
        "CLICKSTREAM_SUPPRESSION_SETTLE_SECONDS": "2",
    }
    saved = dict(os.environ)
    os.environ.update(variables)
    for variable in ("CLICKSTREAM_STREAM_NAME", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KINESIS"):
        os.environ.pop(variable, None)
    try:
        yield variables
    finally:
        LocalWorker.kill_leftovers()
        kill_processes_of(Path(variables["CLICKSTREAM_LOCAL_STATE_DIR"]))
        down = clickstream("local", "down")
        os.environ.clear()
        os.environ.update(saved)
        assert down.returncode == 0, down.stderr.decode()


def kill_processes_of(state_dir: Path) -> None:
    """The demo's workers (and their JVMs) that outlive a demo killed by a failed test: any
    process whose environment names this test's state dir, but the stack's own processes,
    which `local down` stops."""
    own = str(state_dir)
    for process in psutil.process_iter(["cmdline"]):
        try:
            if process.environ().get("CLICKSTREAM_LOCAL_STATE_DIR") != own:
                continue
            if "consume" not in (process.info["cmdline"] or []):
                continue
            for child in [*process.children(recursive=True), process]:
                child.kill()
        except psutil.Error:
            continue


def stop_demo(demo: subprocess.Popen[bytes]) -> None:
    """Ctrl-C first: the demo stops its workers gracefully; then, if need be, SIGKILL."""
    if demo.poll() is not None:
        return
    demo.send_signal(signal.SIGINT)
    try:
        demo.wait(timeout=120)
    except subprocess.TimeoutExpired:
        demo.kill()
        demo.wait()


def wait_for_dashboard(url: str, demo: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if demo.poll() is not None:
            pytest.fail(f"the demo exited ({demo.returncode}) first: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"the dashboard never answered at {url}: {log.read_text()[-3000:]}")


def number(text: str) -> int | None:
    """A figure as the page prints it (1,234), None for its placeholder."""
    digits = text.replace(",", "")
    return int(digits) if digits.isdigit() else None


def expected_figures(manifest: Manifest, summary: dict[str, Any]) -> dict[str, Any]:
    """What the page must show, from the manifest and the demo's own summary."""
    per_minute: dict[str, Counter[str]] = {}
    views: Counter[str] = Counter()
    clicks: Counter[str] = Counter()
    sessions: Counter[str] = Counter()
    for page, minutes in manifest.pages.items():
        for minute, truth in minutes.items():
            # (the chart counts every event; the pages, people's: bots' apart)
            per_minute.setdefault(minute, Counter()).update(
                {"page_view": truth.all_views, "click": truth.all_clicks}
            )
            views[page] += truth.views
            clicks[page] += truth.clicks
            sessions[page] += truth.sessions
    ranked = sorted(views, key=lambda p: (-views[p], -clicks[p], p))[:10]
    return {
        "minutes": per_minute,
        "events": manifest.events,
        "pages": [[p, f"{views[p]:,}", f"{clicks[p]:,}", f"{sessions[p]:,}"] for p in ranked],
        "alerts": sorted(
            (a["window"], a["rule"], a["subject"]) for a in summary["anomalies"]["alerts"]
        ),
        "dead_letters": dict(summary["dead_letters"]),
        "rage_clicks": len(summary["anomalies"]["rage_clicks"]),
        "busiest": ranked[0],
        "busiest_clicks": clicks[ranked[0]],
    }


LEASE_MOVE_EVENTS = ("lease lost", "checkpoint refused", "fenced", "shutdown requested")


def lease_moves(environment: dict[str, str]) -> list[str]:
    """The workers' log lines of leases moving (said with a failure: a lease that moved after
    a window was archived and before its checkpoint makes the new owner rewrite its keys)."""
    logs = Path(environment["CLICKSTREAM_LOCAL_STATE_DIR"]) / "logs"
    return [
        f"{path.name}: {line[:300]}"
        for path in sorted(logs.glob("demo-worker-*.log"))
        for line in path.read_text(errors="replace").splitlines()
        if line.startswith("{") and any(event in line for event in LEASE_MOVE_EVENTS)
    ]


def rollups_against_items(environment: dict[str, str]) -> list[str]:
    """Where the stored live rollups (the dashboard's top pages) and the page-minute items
    (what the demo's check reads) disagree, per minute, shard and page: said with a failure,
    it tells a rollup left behind from a dashboard reading it wrong."""
    settings = LocalStackSettings(state_dir=Path(environment["CLICKSTREAM_LOCAL_STATE_DIR"]))
    state = load_state(settings)
    if state is None:
        return ["no local stack state to read"]
    client = aws.local_client("dynamodb", state.moto_endpoint, state.region)
    table = dynamo.scan_table(client, state.outputs["PageStatsTableName"])

    def counted(row: dict[str, Any]) -> tuple[int, int, int]:
        return int(row["views"]), int(row["clicks"]), int(row["sessions"])

    live = {
        (row["window"], row["shard_id"], row["page"]): counted(row)
        for item in table
        if is_rollup(item)
        for row in rollup_rows(item)
    }
    items = {
        (str(item["window"]), str(item["shard_id"]), str(item["page"])): counted(item)
        for item in page_minute_items(table)
    }
    return [
        f"{key}: rollup {live[key]}, items {items.get(key)}"
        for key in sorted(live)
        if live[key] != items.get(key)
    ][:20]


def differences(shown: dict[str, Any], want: dict[str, Any], manifest: Manifest) -> list[str]:
    """What the page shows that differs from the manifest (empty: it shows them all)."""
    found = []
    for minute, counts in want["minutes"].items():
        on_chart = shown["minutes"].get(minute, {})
        for kind in ("page_view", "click"):
            if on_chart.get(kind, 0) != counts[kind]:
                found.append(f"{minute} {kind}: {on_chart.get(kind, 0)} != {counts[kind]}")
    if number(shown["events"]) != want["events"]:
        found.append(f"events in the window: {shown['events']} != {want['events']}")
    shown_pages = [row[:4] for row in shown["pages"]]
    if shown_pages != want["pages"]:
        # Each rank that differs, shown then wanted: the whole lists are too long to read.
        ranks = itertools.zip_longest(shown_pages, want["pages"])
        wrong = [
            (rank, row, wanted) for rank, (row, wanted) in enumerate(ranks, 1) if row != wanted
        ]
        found.append(f"top pages differ at (rank, shown, wanted): {wrong}")
    alerts = sorted((row[0], row[1], row[2]) for row in shown["alerts"])
    if alerts != want["alerts"]:
        found.append(f"alerts: {alerts} != {want['alerts']}")
    letters = {row[0]: number(row[1]) for row in shown["dead_letters"]}
    if letters != want["dead_letters"]:
        found.append(f"dead letters: {letters} != {want['dead_letters']}")
    if shown["as_of"]:
        as_of = datetime.fromisoformat(shown["as_of"])
        since = as_of - timedelta(minutes=30)
        active = sum(1 for s in manifest.sessions.values() if s.last_seen and s.last_seen >= since)
        if number(shown["active"]) != active:
            found.append(f"active sessions at {shown['as_of']}: {shown['active']} != {active}")
    if number(shown["rage"]) != want["rage_clicks"]:
        found.append(f"rage clicks: {shown['rage']} != {want['rage_clicks']}")
    states = [row[2] for row in shown["shards"]]
    if len(states) != 4 or set(states) != {"caught up"}:
        found.append(f"shards: {states}")
    heatmap = shown["heatmap"]
    if not heatmap["drawn"] or heatmap["page"] != want["busiest"]:
        found.append(f"heatmap: {heatmap} (want {want['busiest']} drawn)")
    elif int(heatmap["clicks"]) != want["busiest_clicks"]:
        found.append(f"heatmap clicks: {heatmap['clicks']} != {want['busiest_clicks']}")
    return found


def test_the_dashboard_shows_the_demos_numbers_live_and_its_heatmap(
    demo_environment: dict[str, str], tmp_path: Path
) -> None:
    # GIVEN the demo running: stack, dashboard, workers, then 20,000 events and anomalies
    log = tmp_path / "demo.log"
    started = time.monotonic()
    with log.open("wb") as stderr:
        demo = subprocess.Popen(
            [sys.executable, "-m", "clickstream.cli", "demo", "--keep", "--json"],
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    url = f"http://127.0.0.1:{demo_environment['CLICKSTREAM_LOCAL_DASHBOARD_PORT']}/"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        wait_for_dashboard(url, demo, log)
        with headless_chromium(1400, 1800) as browser:
            # WHEN the operator's page is opened while the traffic flows, and never reloaded
            browser.get(f"{url}operator")
            totals_seen = set()
            deadline = time.monotonic() + DEMO_DEADLINE_SECONDS
            while demo.poll() is None and time.monotonic() < deadline:
                shown = browser.execute_script(READ_PAGE)
                assert shown["state"] in ("loading", "ok"), (shown["status"], shown["errors"])
                totals_seen.add(shown["events"])
                time.sleep(2)
            output, _ = demo.communicate(timeout=60)
            record("demo: its run", time.monotonic() - started)
            assert demo.returncode == 0, log.read_text()[-3000:]
            summary = json.loads(output)
            assert summary["check_against_manifest"]["exact"], summary["check_against_manifest"]
            manifest = Manifest.model_validate_json(
                (
                    Path(demo_environment["CLICKSTREAM_LOCAL_STATE_DIR"]) / "demo-manifest.json"
                ).read_text()
            )
            want = expected_figures(manifest, summary)
            # THEN within a bounded wait it shows the manifest's numbers, fresh and error-free
            settling = time.monotonic()
            deadline = time.monotonic() + SETTLE_SECONDS
            while True:
                shown = browser.execute_script(READ_PAGE)
                assert shown["state"] == "ok", (shown["status"], shown["errors"])
                totals_seen.add(shown["events"])
                problems = differences(shown, want, manifest)
                if not problems or time.monotonic() > deadline:
                    break
                time.sleep(2)
            record("demo: the page settling", time.monotonic() - settling)
            browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
            # (and the live rollups it reads say what the page-minute items say)
            rollup_gaps = rollups_against_items(demo_environment)
            assert not problems, (problems, rollup_gaps, lease_moves(demo_environment))
            assert not rollup_gaps, (rollup_gaps, lease_moves(demo_environment))
            # AND it updated itself as the traffic arrived (the page was never reloaded)
            assert len(totals_seen) >= 2, totals_seen
            assert len(want["alerts"]) == 5  # the demo's spike, drop and three bots
            assert want["rage_clicks"] == 2  # and two visitors' rage clicks
            as_of = datetime.fromisoformat(shown["as_of"])
            assert abs((datetime.now(as_of.tzinfo) - as_of).total_seconds()) < 30
        # AND the demo printed the dashboard's URL and wrote the busiest page's heatmap
        assert summary["dashboard"] == url
        picture = Path(summary["heatmap"])
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        # AND once its hours are compacted (open ones too: the traffic is minutes old),
        # `sql` over `events` and the busiest page's heatmap read the Parquet alone and
        # equal the manifest
        with phase("demo: the lake"):
            the_lake_equals_the_manifest(manifest, want, tmp_path)
        # AND the site owner's view of the demo's range shows the manifest's people per
        # channel, device and country, and again once a channel is clicked
        with phase("demo: the site owner's view"):
            site_view_equals_the_manifest(manifest, url)
        # AND the planted journeys' funnel is the manifest's, per visit and per person across
        # devices, in the demo's summary, `clickstream funnel` and the site owner's view
        with phase("demo: the planted funnel"):
            planted_funnel_is_the_manifests(manifest, summary, url)
        # AND the visitors' addresses are in no byte the stack stores or logs
        with phase("demo: no address stored"):
            state_dir = Path(demo_environment["CLICKSTREAM_LOCAL_STATE_DIR"])
            state = load_state(LocalStackSettings(state_dir=state_dir))
            assert state is not None
            sent = {country.address for country in world.COUNTRIES}
            texts = list(stored_texts(state, state_dir))
            assert len(texts) > 100, len(texts)  # (the stream, the archive, the tables, logs)
            assert addresses_found(texts, sent) == []
        # AND once four visitors are forgotten (one a person on two devices), the dashboard,
        # `sql` and `query` show them nowhere and the rest still equals the manifest
        with phase("demo: forgetting four visitors"):
            forgotten_visitors_are_nowhere(manifest, want, url)
    finally:
        stop_demo(demo)


READ_SITE = """
const panels = {};
for (const panel of document.querySelectorAll(".panel")) {
  const rows = {};
  for (const tr of panel.querySelectorAll("tbody tr")) {
    rows[tr.querySelector("td.value").dataset.value] = +tr.dataset.visits;
  }
  panels[panel.dataset.dim] = rows;
}
const visits = document.querySelector('[data-figure="visits"] .figure');
return {
  state: document.body.dataset.state,
  error: document.getElementById("errors").textContent,
  panels,
  visits: visits ? +visits.dataset.value : null,
  filters: Array.from(document.querySelectorAll("#filters .chip")).map((c) => c.dataset.filter),
  mapped: Array.from(document.querySelectorAll("#world path[data-visits]"))
    .map((p) => [p.dataset.country, +p.dataset.visits]),
  address: location.search,
};
"""


def read_site(browser: Any, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The site owner's view as drawn, once `ready` holds (within a minute)."""
    deadline = time.monotonic() + 60
    while True:
        shown: dict[str, Any] = browser.execute_script(READ_SITE)
        assert shown["state"] != "error", shown["error"]
        if shown["state"] == "ok" and ready(shown):
            return shown
        assert time.monotonic() < deadline, shown
        time.sleep(0.5)


def site_view_equals_the_manifest(manifest: Manifest, url: str) -> None:
    assert manifest.dimensions is not None
    assert manifest.first_event_at is not None
    assert manifest.last_event_at is not None
    people = manifest.dimensions.people_by_channel

    def merged(name: str, channels: list[str]) -> dict[str, int]:
        found: Counter[str] = Counter()
        for channel in channels:
            found.update(people[channel].get(name, {}))
        return dict(found)

    every = sorted(people)
    first = manifest.first_event_at.replace(second=0, microsecond=0)
    last = manifest.last_event_at + timedelta(minutes=1)
    address = f"{url}?from={first.isoformat()}&to={last.isoformat()}"
    address = address.replace("+", "%2B")
    with headless_chromium(1400, 2000) as browser:
        # WHEN the view of the demo's range is opened
        browser.get(address)
        shown = read_site(browser, lambda s: bool(s["panels"].get("channel")))
        # THEN its panels are the manifest's people (bots apart)
        assert shown["panels"]["channel"] == merged("channel", every)
        assert shown["panels"]["device_type"] == merged("device_type", every)
        assert shown["panels"]["country"] == merged("country", every)
        assert shown["visits"] == sum(merged("channel", every).values())
        # (the world map shades the same countries with the same visits)
        assert dict(shown["mapped"]) == merged("country", every)
        browser.save_screenshot(str(ARTIFACTS / "site-view.png"))
        # WHEN the busiest channel is clicked
        channel = max(shown["panels"]["channel"], key=shown["panels"]["channel"].__getitem__)
        browser.execute_script(
            "const rows = '.panel[data-panel=sources] td.value button';"
            "for (const b of document.querySelectorAll(rows))"
            " if (b.textContent === arguments[0]) b.click();",
            channel,
        )
        # THEN every panel is the manifest's for that channel, the filter shown and addressed
        filtered = read_site(browser, lambda s: s["filters"] == [f"channel={channel}"])
        assert filtered["panels"]["channel"] == {
            channel: sum(merged("channel", [channel]).values())
        }
        assert filtered["panels"]["device_type"] == merged("device_type", [channel])
        assert filtered["panels"]["country"] == merged("country", [channel])
        assert "filter=channel" in filtered["address"]
        browser.save_screenshot(str(ARTIFACTS / "site-view-filtered.png"))
        # AND the address alone opens the same view (a view can be shared)
        browser.get(f"{url}{filtered['address']}")
        again = read_site(browser, lambda s: s["filters"] == [f"channel={channel}"])
        assert again["panels"] == filtered["panels"]
        # AND back, the filter is gone; the range picker moves the address and the figures
        browser.back()
        read_site(browser, lambda s: s["filters"] == [] and "from=" in s["address"])
        browser.execute_script(
            "const r = document.getElementById('range'); r.value = '7d';"
            " r.dispatchEvent(new Event('change'));"
        )
        week = read_site(browser, lambda s: "range=7d" in s["address"])
        assert week["visits"] == sum(merged("channel", every).values())


def demo_range(manifest: Manifest) -> tuple[str, str]:
    """The demo's traffic's range: from its first minute to a minute after its last event."""
    assert manifest.first_event_at is not None
    assert manifest.last_event_at is not None
    first = manifest.first_event_at.replace(second=0, microsecond=0)
    return first.isoformat(), (manifest.last_event_at + timedelta(minutes=1)).isoformat()


def planted_funnel_is_the_manifests(manifest: Manifest, summary: dict[str, Any], url: str) -> None:
    planted = manifest.funnel
    assert planted is not None, "the demo planted no journeys"
    assert planted.people[-1] > 0
    assert planted.people_across_devices > 0
    want = {"visit": planted.visits, "person": planted.people}
    assert {per: summary["planted_funnel"][per] for per in want} == want
    start, end = demo_range(manifest)
    for per, counts in want.items():
        answer = clickstream(
            "funnel", *planted.steps, "--from", start, "--to", end, "--within", planted.within,
            "--per", per, "--json",
        )  # fmt: skip
        assert answer.returncode == 0, answer.stderr.decode()[-3000:]
        assert [row["count"] for row in json.loads(answer.stdout)["steps"]] == counts, per
    with headless_chromium(1400, 2400) as browser:
        for per, counts in want.items():
            params = [("from", start), ("to", end), *(("step", step) for step in planted.steps),
                      ("per", per), ("within", planted.within)]  # fmt: skip
            browser.get(f"{url}?{urllib.parse.urlencode(params)}")
            deadline = time.monotonic() + 120
            while True:
                shown = browser.execute_script(
                    "const c = document.getElementById('funnel-card');"
                    "return [c.dataset.state, Array.from(document.querySelectorAll("
                    "'#funnel .step')).map((li) => Number(li.dataset.count)),"
                    " c.textContent.slice(0, 2000)];"
                )
                if shown[0] in ("ok", "error"):
                    break
                assert time.monotonic() < deadline, shown
                time.sleep(0.5)
            assert shown[:2] == ["ok", counts], (per, shown)
            browser.execute_script("document.getElementById('funnel-card').scrollIntoView()")
            browser.save_screenshot(str(ARTIFACTS / f"site-funnel-per-{per}.png"))


def cli_sql(query: str) -> list[dict[str, Any]]:
    answer = clickstream("sql", query, "--format", "json")
    assert answer.returncode == 0, answer.stderr.decode()[-3000:]
    rows: list[dict[str, Any]] = json.loads(answer.stdout)
    return rows


def views_and_clicks(rows: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """(page key, type) -> events, from rows of page, type, n."""
    found: Counter[tuple[str, str]] = Counter()
    for row in rows:
        if row["type"] in ("page_view", "click"):
            found[(page_key(row["page"]), row["type"])] += row["n"]
    return found


def manifest_views_and_clicks(manifest: Manifest) -> Counter[tuple[str, str]]:
    expected: Counter[tuple[str, str]] = Counter()
    for page, minutes in manifest.pages.items():
        for truth in minutes.values():
            expected[(page, "page_view")] += truth.all_views
            expected[(page, "click")] += truth.all_clicks
    return expected


def quoted(values: set[str]) -> str:
    return ", ".join("'" + value.replace("'", "''") + "'" for value in sorted(values))


def querying(connection: Any) -> Callable[[str], list[dict[str, Any]]]:
    """Queries over one reading of the bucket (`insights.archive_views.connect`), rows as dicts."""

    def query(text: str) -> list[dict[str, Any]]:
        columns, rows = engine.run(connection, text)
        return [dict(zip(columns, row, strict=True)) for row in rows]

    return query


def forgotten_visitors_are_nowhere(manifest: Manifest, want: dict[str, Any], url: str) -> None:
    # GIVEN three visitors: a user id seen in two sessions, a bot the alerts name, and the
    # busiest anonymous visitor (found in this process: one reading of the bucket)
    sql = querying(archive_views.connect(archive_location()))
    users = sql(
        "SELECT user_id FROM events WHERE user_id IS NOT NULL GROUP BY 1 "
        "HAVING count(DISTINCT session_id) >= 2 ORDER BY count(*) DESC, 1 LIMIT 1"
    )
    assert users, "the demo's traffic has no user id seen in two sessions"
    user = str(users[0]["user_id"])
    bot_session = next(subject for _, rule, subject in want["alerts"] if rule == "bot_session")
    (bot,) = sql(f"SELECT DISTINCT anonymous_id FROM events WHERE session_id = '{bot_session}'")
    named = {subject for _, _, subject in want["alerts"]}
    (visitor,) = sql(
        "SELECT anonymous_id FROM events WHERE user_id IS NULL AND anonymous_id IS NOT NULL "
        f"AND session_id NOT IN ({quoted(named)}) GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
    )
    anonymous = {str(bot["anonymous_id"]), str(visitor["anonymous_id"])}
    # AND a planted person who logged in on a phone and on a laptop (`producer.journeys`)
    assert manifest.funnel is not None
    stitched, devices = next(iter(manifest.funnel.stitched.items()))
    theirs = {
        str(row["session_id"])
        for row in sql(
            "SELECT DISTINCT session_id FROM events WHERE user_id IN "
            f"({quoted({user, stitched})}) OR anonymous_id IN ({quoted(anonymous)})"
        )
    }
    assert set(devices) <= theirs, (devices, theirs)
    device_ids = sql(
        f"SELECT DISTINCT anonymous_id FROM events WHERE session_id IN ({quoted(set(devices))})"
    )
    assert len(device_ids) == 2, device_ids  # two devices, each its own anonymous id
    anonymous_of_stitched = {str(row["anonymous_id"]) for row in device_ids}
    assert len(theirs) >= 6, theirs
    removed = views_and_clicks(
        sql(
            "SELECT page, type, count(*) AS n FROM events "
            f"WHERE session_id IN ({quoted(theirs)}) GROUP BY ALL"
        )
    )
    # WHEN each is forgotten
    forgotten = (
        ["--user-id", user],
        ["--user-id", stitched],
        *(["--anonymous-id", a] for a in sorted(anonymous)),
    )
    for ids in forgotten:
        done = clickstream("forget", *ids, "--json")
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        assert json.loads(done.stdout)["status"] == "done"
    # THEN `clickstream sql` finds none of their rows, in `events` or the raw archive
    every_id = theirs | anonymous | anonymous_of_stitched | {user, stitched}
    theirs_in = (
        f"session_id IN ({quoted(every_id)}) OR user_id IN ({quoted(every_id)}) "
        f"OR anonymous_id IN ({quoted(every_id)})"
    )
    left = cli_sql(
        f"SELECT 'events' AS t, count(*) AS n FROM events WHERE {theirs_in} UNION ALL "
        f"SELECT 'raw_events', count(*) FROM raw_events WHERE {theirs_in} ORDER BY 1"
    )
    assert left == [{"t": "events", "n": 0}, {"t": "raw_events", "n": 0}]
    sql_after = querying(archive_views.connect(archive_location()))
    # AND every other session, and every page and type, is the manifest's less theirs
    per_session = {str(r["session_id"]): r["n"] for r in sql_after(
        "SELECT session_id, count(*) AS n FROM events GROUP BY 1"
    )}  # fmt: skip
    assert per_session == {
        session: truth.events
        for session, truth in manifest.sessions.items()
        if session not in theirs and truth.events
    }
    found = views_and_clicks(sql_after("SELECT page, type, count(*) AS n FROM events GROUP BY ALL"))
    assert found == +(manifest_views_and_clicks(manifest) - removed)
    # AND `query` knows none of their sessions, and no alert names one
    for session in sorted(theirs):
        answer = clickstream("query", "session", session, "--json")
        assert answer.returncode != 0, session
        assert b"no session" in answer.stderr, session
    other = next(s for s in sorted(manifest.sessions) if s not in theirs)
    assert clickstream("query", "session", other, "--json").returncode == 0
    others = sorted(a for a in want["alerts"] if a[2] not in theirs)
    assert len(others) == len(want["alerts"]) - 1  # the bot's alone
    alerts = json.loads(clickstream("query", "alerts", "--json").stdout)["alerts"]
    assert sorted(a["subject"] for a in alerts) == sorted(a[2] for a in others)
    # AND the dashboard, opened again, shows none of them, and the other alerts
    with headless_chromium(1400, 1800) as browser:
        browser.get(f"{url}operator")
        deadline = time.monotonic() + 60
        while True:
            shown = browser.execute_script(READ_PAGE)
            text = browser.execute_script("return document.body.innerText;")
            alerts_shown = sorted((row[0], row[1], row[2]) for row in shown["alerts"])
            shown_ids = sorted(i for i in ids if i in text)
            if shown["state"] == "ok" and alerts_shown == others and not shown_ids:
                break
            assert time.monotonic() < deadline, (shown["status"], alerts_shown, others, shown_ids)
            time.sleep(2)


def the_lake_equals_the_manifest(manifest: Manifest, want: dict[str, Any], tmp_path: Path) -> None:
    compacted = clickstream("compact", "--since", "6h", "--include-open", "--json")
    assert compacted.returncode == 0, compacted.stderr.decode()[-3000:]
    hours = json.loads(compacted.stdout)["hours"]
    assert {h["outcome"] for h in hours} <= {"compacted", "empty"}, hours
    assert sum(h["events"] for h in hours) == manifest.events, hours

    sources = cli_sql("SELECT kind, count(*) AS n FROM events_sources GROUP BY kind")
    assert [row["kind"] for row in sources] == ["parquet"], sources
    (totals,) = cli_sql(
        "SELECT count(*) AS n, count(DISTINCT (session_id, event_id)) AS d FROM events"
    )
    assert totals == {"n": manifest.events, "d": manifest.events}
    found = views_and_clicks(cli_sql("SELECT page, type, count(*) AS n FROM events GROUP BY ALL"))
    assert found == +manifest_views_and_clicks(manifest)
    # (and the enrichment's columns, from the Parquet, give the manifest's visits and events
    # per channel, source, device type, browser, country and bot)
    assert manifest.dimensions is not None
    by_dimension = {
        view: {
            name: {
                "(none)"
                if row["value"] is None
                else str(row["value"]).lower()
                if isinstance(row["value"], bool)
                else str(row["value"]): row["n"]
                for row in cli_sql(f"SELECT {name} AS value, count(*) AS n FROM {view} GROUP BY 1")
            }
            for name in DIMENSIONS
        }
        for view in ("sessions", "events")
    }
    assert (
        check_dimensions(manifest.dimensions, by_dimension["sessions"], by_dimension["events"])
        == []
    )
    heat = clickstream(
        "heatmap", want["busiest"], "--since", "6h", "--json", "--out", str(tmp_path / "h.png")
    )
    assert heat.returncode == 0, heat.stderr.decode()[-3000:]
    drawn = json.loads(heat.stdout)
    assert drawn["clicks"] == want["busiest_clicks"]
    assert drawn["read_from"]["raw"] == 0
    assert drawn["read_from"]["parquet"] >= 1
