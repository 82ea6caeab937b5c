// The clickstream dashboard: polls /api/snapshot and draws it. No library: the chart is SVG
// drawn here, every text goes in through textContent, nothing is fetched from elsewhere.
"use strict";

(() => {
  const SERIES = ["page_view", "click", "scroll", "custom", "other"];
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  let refreshSeconds = 5;
  let lastSuccess = 0; // Date.now() of the last snapshot received
  let asOf = null;
  let dataAge = 0; // seconds between the figures' reading and their serving (server clock)
  let staleAfter = 30;
  let chosenPage = null; // the heatmap's page: the busiest until the viewer picks one
  let pickedByViewer = false;
  let heatmapAt = 0;
  let heatmapSeconds = 60;

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function number(value) {
    return typeof value === "number" ? value.toLocaleString("en-US") : "–";
  }

  function fillTable(id, rows, cells, emptyId) {
    const body = $(id).tBodies[0];
    body.replaceChildren(...rows.map((row) => {
      const tr = document.createElement("tr");
      for (const cell of cells(row)) tr.append(cell);
      return tr;
    }));
    if (emptyId) $(emptyId).hidden = rows.length > 0;
  }

  function minuteCell(minute) {
    const cell = element("td", String(minute).slice(11));
    cell.title = `${minute} UTC`;
    cell.dataset.minute = minute;
    return cell;
  }

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    return node;
  }

  function niceCeiling(value) {
    if (value <= 5) return 5;
    const power = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
    return 10 * power;
  }

  function drawChart(rows) {
    const chart = $("chart");
    const width = 960, height = 240, left = 44, bottom = 22, top = 8;
    const peak = niceCeiling(Math.max(0, ...rows.map((row) => row.total)));
    const slot = (width - left) / Math.max(rows.length, 1);
    const scale = (height - bottom - top) / peak;
    const nodes = [];
    for (const fraction of [0, 0.5, 1]) {
      const y = height - bottom - fraction * peak * scale;
      nodes.push(svg("line", { x1: left, x2: width, y1: y, y2: y, class: "axis" }));
      const label = svg("text", { x: left - 6, y: y + 4, "text-anchor": "end" });
      label.textContent = number(fraction * peak);
      nodes.push(label);
    }
    rows.forEach((row, index) => {
      const group = svg("g", { class: "minute", "data-minute": row.minute, "data-total": row.total });
      const title = svg("title", {});
      title.textContent = `${row.minute} UTC: ${row.total} events (` +
        SERIES.filter((kind) => row[kind]).map((kind) => `${row[kind]} ${kind}`).join(", ") + ")";
      group.append(title);
      let y = height - bottom;
      for (const kind of SERIES) {
        const count = row[kind] || 0;
        if (!count) continue;
        const tall = count * scale;
        y -= tall;
        group.append(svg("rect", {
          x: left + index * slot + 1, y, width: Math.max(slot - 2, 1), height: tall,
          fill: `var(--${kind})`, "data-type": kind, "data-count": count,
        }));
      }
      nodes.push(group);
      if (index % 10 === 0) {
        const label = svg("text", { x: left + index * slot, y: height - 6 });
        label.textContent = row.minute.slice(11);
        nodes.push(label);
      }
    });
    chart.replaceChildren(...nodes);
    $("legend").replaceChildren(...SERIES.map((kind) => {
      const key = element("span", kind.replace("_", " "));
      key.style.setProperty("--swatch", `var(--${kind})`);
      return key;
    }));
  }

  function render(snapshot) {
    refreshSeconds = snapshot.refresh_seconds || refreshSeconds;
    heatmapSeconds = snapshot.heatmap_refresh_seconds || heatmapSeconds;
    staleAfter = snapshot.stale_after_seconds || staleAfter;
    asOf = snapshot.as_of;
    dataAge = (Date.parse(snapshot.served_at) - Date.parse(snapshot.as_of)) / 1000;
    document.body.dataset.asOf = asOf;
    const span = `last ${snapshot.window_minutes} min, UTC`;
    $("chart-span").textContent = span;
    $("pages-span").textContent = span;
    $("events-total-label").textContent = `events in the last ${snapshot.window_minutes} min`;
    $("active-sessions-label").textContent =
      `active sessions (an event in the last ${snapshot.active_minutes} min)`;
    $("recent-heading").textContent = `views, last ${snapshot.recent_minutes} min`;
    if (snapshot.events_per_minute) {
      drawChart(snapshot.events_per_minute);
      $("events-total").textContent = number(snapshot.events_in_window);
      $("active-sessions").textContent = number(snapshot.active_sessions);
    }
    if (snapshot.top_pages) renderPages(snapshot.top_pages);
    if (snapshot.alerts) {
      $("alert-count").textContent = number(snapshot.alerts.length);
      fillTable("alerts", snapshot.alerts, (alert) => [
        minuteCell(alert.window), element("td", alert.rule), element("td", alert.subject),
        element("td", alert.observed, "number"),
        element("td", alert.baseline !== undefined && alert.baseline !== null
          ? `${alert.baseline} / ${alert.threshold}` : `score ≥ ${alert.threshold}`, "number"),
      ], "alerts-empty");
    }
    if (snapshot.dead_letters) {
      const reasons = Object.entries(snapshot.dead_letters);
      $("dead-letter-count").textContent = number(reasons.reduce((sum, [, n]) => sum + n, 0));
      fillTable("dead-letters", reasons, ([reason, count]) => [
        element("td", reason), element("td", number(count), "number"),
      ], "dead-letters-empty");
    }
    if (snapshot.shards) {
      fillTable("shards", snapshot.shards, (shard) => [
        element("td", shard.shard_id), element("td", shard.owner || "–"),
        element("td", shard.state, `state-${shard.state.replace(/ /g, "-")}`),
        element("td", shard.millis_behind === null ? "–"
          : `${(shard.millis_behind / 1000).toFixed(1)} s`, "number"),
      ]);
      // Read on its own, less often than the other figures: say when.
      $("shards-read-at").textContent = snapshot.shards_read_at
        ? `read at ${snapshot.shards_read_at.slice(11, 19)} UTC` : "";
    }
    if (snapshot.rage_clicks) {
      $("rage-count").textContent = number(snapshot.rage_clicks.count);
      const pages = Object.entries(snapshot.rage_clicks.by_page);
      $("rage-pages").replaceChildren(...pages.slice(0, 3).map(([page, count], index) => {
        const pick = element("button", `${index ? ", " : "on "}${page} (${count})`);
        pick.type = "button";
        pick.title = `heatmap of ${page}`;
        pick.addEventListener("click", () => choosePage(page));
        return pick;
      }));
    }
    const errors = snapshot.errors || [];
    showErrors(errors.map((e) => `${e.source}: ${e.error}`));
  }

  function renderPages(pages) {
    fillTable("top-pages", pages, (row) => {
      const name = element("td", null, "page");
      const pick = element("button", row.page);
      pick.type = "button";
      pick.title = `heatmap of ${row.page}`;
      pick.addEventListener("click", () => choosePage(row.page));
      name.append(pick);
      return [name, element("td", number(row.views), "number"),
        element("td", number(row.clicks), "number"), element("td", number(row.sessions), "number"),
        element("td", number(row.recent_views), "number"),
        element("td", number(row.bot_views), "number")];
    });
    const select = $("heatmap-page");
    const names = pages.map((row) => row.page);
    if (chosenPage && !names.includes(chosenPage)) names.push(chosenPage);
    const current = Array.from(select.options).map((option) => option.value);
    if (current.join("\n") !== names.join("\n")) {
      select.replaceChildren(...names.map((name) => {
        const option = element("option", name);
        option.value = name;
        return option;
      }));
    }
    if (!pickedByViewer && names.length && chosenPage !== names[0]) {
      chosenPage = names[0];
      heatmapAt = 0;
    }
    if (chosenPage) select.value = chosenPage;
  }

  function choosePage(page) {
    chosenPage = page;
    pickedByViewer = true;
    $("heatmap-page").value = page;
    loadHeatmap();
  }

  async function loadHeatmap() {
    if (!chosenPage) return;
    heatmapAt = Date.now();
    const query = new URLSearchParams({ page: chosenPage });
    const width = $("heatmap-width").value;
    if (width) query.set("width", width);
    const image = $("heatmap-image");
    try {
      const answer = await fetch(`/api/heatmap?${query}`, { credentials: "same-origin" });
      const figures = await answer.json();
      if (!answer.ok) throw new Error(figures.error || `HTTP ${answer.status}`);
      const classes = Object.entries(figures.clicks_per_width_class)
        .map(([name, count]) => `${name} ${count}`).join(", ");
      $("heatmap-info").textContent = `${figures.clicks} clicks in the last hour` +
        (classes ? ` (${classes}); showing ${figures.width_class}` : "");
      fillTable("heatmap-rage", figures.rage_clicks, (rage) => [
        element("td", rage.started_at.slice(11, 19)), element("td", rage.session_id),
        element("td", rage.clicks, "number"), element("td", `(${rage.x}, ${rage.y})`),
      ], "heatmap-rage-empty");
      if (figures.clicks) {
        image.src = `/api/heatmap.png?${query}&at=${heatmapAt}`;
        image.alt = `click heatmap of ${figures.page}`;
        image.hidden = false;
      } else {
        image.hidden = true;
      }
      image.dataset.page = figures.page;
      image.dataset.clicks = figures.clicks;
    } catch (problem) {
      image.hidden = true;
      $("heatmap-info").textContent = `heatmap: ${problem.message}`;
    }
  }

  function showErrors(messages) {
    const box = $("errors");
    box.replaceChildren(...messages.map((message) => element("div", message)));
    box.hidden = messages.length === 0;
    if (messages.length) document.body.dataset.state = "error";
  }

  function updateStatus() {
    if (!lastSuccess) return;
    // Stale: the server's figures are old (a source slow to answer), or no answer came.
    const age = dataAge + (Date.now() - lastSuccess) / 1000;
    const stale = age > staleAfter || Date.now() - lastSuccess > 3 * refreshSeconds * 1000;
    if (document.body.dataset.state !== "error") {
      document.body.dataset.state = stale ? "stale" : "ok";
    }
    const shown = asOf ? asOf.slice(11, 19) : "?";
    $("status").textContent = stale
      ? `stale: figures ${Math.round(age)} s old (as of ${shown} UTC)`
      : `live: as of ${shown} UTC, every ${refreshSeconds} s`;
    $("status").dataset.asOf = asOf || "";
  }

  async function poll() {
    try {
      const answer = await fetch("/api/snapshot", { credentials: "same-origin" });
      if (!answer.ok) throw new Error(`the dashboard server answered ${answer.status}`);
      const snapshot = await answer.json();
      document.body.dataset.state = "ok";
      lastSuccess = Date.now();
      render(snapshot);
      if (chosenPage && Date.now() - heatmapAt > heatmapSeconds * 1000) loadHeatmap();
    } catch (problem) {
      showErrors([`cannot read the figures: ${problem.message}`]);
    }
    updateStatus();
    setTimeout(poll, refreshSeconds * 1000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("heatmap-page").addEventListener("change", (event) => choosePage(event.target.value));
    $("heatmap-width").addEventListener("change", loadHeatmap);
    $("heatmap-form").addEventListener("submit", (event) => event.preventDefault());
    setInterval(updateStatus, 1000);
    poll();
  });
})();
