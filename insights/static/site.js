// The site owner's view: asks /api/report for the range, filters and panels the address
// holds, and draws totals, a graph and panels. A click on a row filters the whole view by it;
// the view's state lives in the address, so a view can be shared. No library, nothing from
// elsewhere; every text goes in through textContent.
"use strict";

(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const TOTALS = [
    ["visitors", "visitors"],
    ["visits", "visits"],
    ["page_views", "page views"],
    ["views_per_visit", "views per visit"],
    ["bounce_rate", "bounce rate"],
    ["visit_duration_s", "visit duration"],
  ];
  const LOWER_IS_BETTER = new Set(["bounce_rate"]);
  let timer = null;
  let asked = 0; // the latest request's number: an older answer arriving late is dropped

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    return node;
  }

  // -- the view's state: the address --------------------------------------------------------

  function state() {
    const params = new URLSearchParams(location.search);
    return {
      range: params.get("range") || (params.get("from") ? "custom" : "7d"),
      from: params.get("from") || "",
      to: params.get("to") || "",
      site: params.get("site") || "",
      filters: params.getAll("filter").filter((f) => f.includes("=")),
      bots: params.get("bots") === "1",
      property: params.get("property") || "",
      tz: params.get("tz") || "", // none: the site's zone (the dashboard's setting)
      tabs: Object.fromEntries(params.getAll("tab").map((t) => t.split(":", 2))),
      // The funnel, paths and retention cards' own choices.
      steps: params.getAll("step").filter((step) => step.trim()),
      per: params.get("per") || "visit",
      within: params.get("within") || "1d",
      dropped: params.get("dropped") || "",
      paths: params.get("paths") || "",
      direction: params.get("direction") || "after",
      pathSteps: params.get("path_steps") || "3",
      cohort: params.get("cohort") || "",
    };
  }

  // What the address and the API share: the range (named `rangeName`: the address says
  // `range`, the API `since`), the zone, the site, the filters, people or bots.
  function viewParams(current, rangeName) {
    const params = new URLSearchParams();
    if (current.range === "custom") {
      if (current.from) params.set("from", current.from);
      if (current.to) params.set("to", current.to);
    } else {
      params.set(rangeName, current.range);
    }
    if (current.tz) params.set("tz", current.tz);
    if (current.site) params.set("site", current.site);
    if (current.bots) params.set("bots", "1");
    for (const f of current.filters) params.append("filter", f);
    return params;
  }

  function go(next) {
    const params = viewParams(next, "range");
    if (next.property) params.set("property", next.property);
    for (const [panel, dim] of Object.entries(next.tabs)) params.append("tab", `${panel}:${dim}`);
    for (const step of next.steps) params.append("step", step);
    if (next.steps.length) {
      params.set("per", next.per);
      params.set("within", next.within);
      if (next.dropped) params.set("dropped", next.dropped);
    }
    if (next.paths) {
      params.set("paths", next.paths);
      params.set("direction", next.direction);
      params.set("path_steps", next.pathSteps);
    }
    if (next.cohort) params.set("cohort", next.cohort);
    history.pushState(null, "", `${location.pathname}?${params}`);
    load();
  }

  function panelDimension(panel, current) {
    const chosen = current.tabs[panel.dataset.panel];
    const buttons = Array.from(panel.querySelectorAll(".tabs button"));
    const found = buttons.find((b) => b.dataset.dim === chosen) || buttons[0];
    return found.dataset.dim;
  }

  function apiAddress(current) {
    const params = viewParams(current, "since");
    params.set("compare", "1");
    params.set("top", "20");
    params.set("goals", "1");
    const panels = new Set(["site"]);
    for (const panel of document.querySelectorAll(".panel")) {
      panels.add(panelDimension(panel, current));
    }
    for (const name of panels) params.append("panel", name);
    return `/api/report?${params}`;
  }

  // -- drawing -------------------------------------------------------------------------------

  function shown(name, value) {
    if (value === null || value === undefined) return "–";
    if (name === "bounce_rate" || name === "conversion_rate") return `${(value * 100).toFixed(1)}%`;
    if (name === "visit_duration_s") {
      const minutes = Math.floor(value / 60);
      return minutes ? `${minutes}m ${Math.round(value % 60)}s` : `${Math.round(value)}s`;
    }
    return Number(value).toLocaleString("en-US");
  }

  function drawTotals(totals, previous) {
    $("totals").replaceChildren(...TOTALS.map(([name, label]) => {
      const tile = element("div", null, "tile");
      tile.dataset.figure = name;
      const figure = element("span", shown(name, totals[name]), "figure");
      figure.dataset.value = totals[name] === null ? "" : String(totals[name]);
      tile.append(figure, element("span", label, "label"));
      const before = previous ? previous[name] : null;
      if (typeof before === "number" && before > 0 && typeof totals[name] === "number") {
        const change = (totals[name] - before) / before;
        const better = LOWER_IS_BETTER.has(name) ? change < 0 : change > 0;
        const text = `${change >= 0 ? "+" : ""}${Math.round(change * 100)}% vs previous`;
        tile.append(element("span", text, `change ${change === 0 ? "" : better ? "up" : "down"}`));
      }
      return tile;
    }));
  }

  function drawGraph(series) {
    const graph = $("graph");
    const width = 960;
    const height = 220;
    const left = 44;
    const bottom = 24;
    const top = 10;
    const ceiling = Math.max(5, ...series.map((b) => Math.max(b.visitors, b.page_views)));
    const x = (i) => left + (series.length <= 1 ? 0 : (i * (width - left - 8)) / (series.length - 1));
    const y = (v) => top + (height - top - bottom) * (1 - v / ceiling);
    const nodes = [svg("line", { x1: left, x2: width, y1: y(0), y2: y(0), class: "axis" })];
    for (const fraction of [0.5, 1]) {
      const label = svg("text", { x: 4, y: y(ceiling * fraction) + 4 });
      label.textContent = Math.round(ceiling * fraction).toLocaleString("en-US");
      nodes.push(label);
    }
    for (const [key, className] of [["visitors", "visitors"], ["page_views", "views"]]) {
      const points = series.map((b, i) => `${x(i).toFixed(1)},${y(b[key]).toFixed(1)}`).join(" ");
      nodes.push(svg("polyline", { points, class: className }));
    }
    const every = Math.max(1, Math.ceil(series.length / 8));
    series.forEach((bucket, i) => {
      const group = svg("g", { class: "bucket" });
      group.dataset.bucket = bucket.bucket;
      group.dataset.visitors = bucket.visitors;
      group.dataset.pageViews = bucket.page_views;
      const title = svg("title", {});
      title.textContent = `${bucket.bucket}: ${bucket.visitors} visitors, ${bucket.page_views} page views`;
      group.append(
        svg("circle", { cx: x(i), cy: y(bucket.visitors), r: 2.5, fill: "var(--page_view)" }),
        svg("circle", { cx: x(i), cy: y(bucket.page_views), r: 2.5, fill: "var(--click)" }),
        title,
      );
      nodes.push(group);
      if (i % every === 0) {
        const text = bucket.bucket.length > 10 ? bucket.bucket.slice(11, 16) : bucket.bucket.slice(5);
        const label = svg("text", { x: x(i), y: height - 6, "text-anchor": "middle" });
        label.textContent = text;
        nodes.push(label);
      }
    });
    graph.replaceChildren(...nodes);
    if (series.length) $("series-span").textContent = `${series[0].bucket} – ${series[series.length - 1].bucket}`;
  }

  function drawPanel(panel, dim, rows, current) {
    for (const button of panel.querySelectorAll(".tabs button")) {
      button.classList.toggle("on", button.dataset.dim === dim);
    }
    panel.dataset.dim = dim;
    const heading = panel.querySelector("th.value");
    heading.textContent = dim.replace("property:", "").replace("_", " ");
    const event = dim === "event" || dim.startsWith("property:");
    const third = event ? "events" : dim === "page" ? "page_views" : "bounce_rate";
    panel.querySelectorAll("th.number")[2].textContent = event ? "events" : dim === "page" ? "views" : "bounce";
    const most = Math.max(1, ...rows.map((r) => r.visitors));
    panel.querySelector("tbody").replaceChildren(...rows.map((row) => {
      const tr = element("tr", null, "bar");
      tr.style.setProperty("--share", `${Math.round((100 * row.visitors) / most)}%`);
      const cell = element("td", null, "value");
      const label = row.value === null ? "(none)" : row.value;
      if (row.value !== null && !dim.startsWith("property:")) {
        const button = element("button", label);
        button.type = "button";
        button.title = `show only visits with ${dim} ${label}`;
        button.addEventListener("click", () => {
          const wanted = `${dim}=${row.value}`;
          if (!current.filters.includes(wanted)) go({ ...current, filters: [...current.filters, wanted] });
        });
        cell.append(button);
      } else {
        cell.textContent = label;
      }
      cell.dataset.value = label;
      tr.append(
        cell,
        element("td", shown("visitors", row.visitors), "number"),
        element("td", shown("visits", row.visits), "number"),
        element("td", shown(third, row[third]), "number"),
      );
      tr.dataset.visits = row.visits;
      return tr;
    }));
  }

  // The saved goals over the view's visits (converted people, visits, conversions, rate).
  function drawGoals(goals) {
    $("no-goals").hidden = goals.length > 0;
    $("goals").hidden = goals.length === 0;
    $("goals").querySelector("tbody").replaceChildren(...goals.map((goal) => {
      const tr = element("tr");
      const cell = element("td", goal.goal, "value");
      cell.dataset.value = goal.goal;
      tr.append(
        cell,
        element("td", shown("visitors", goal.visitors), "number"),
        element("td", shown("visits", goal.visits), "number"),
        element("td", shown("conversions", goal.conversions), "number"),
        element("td", shown("conversion_rate", goal.conversion_rate), "number"),
      );
      tr.dataset.visits = goal.visits;
      return tr;
    }));
  }

  function drawFilters(current) {
    $("filters").replaceChildren(...current.filters.map((wanted) => {
      const chip = element("span", wanted.replace("=", ": "), "chip");
      chip.dataset.filter = wanted;
      const remove = element("button", "×");
      remove.type = "button";
      remove.title = "remove this filter";
      remove.addEventListener("click", () => {
        go({ ...current, filters: current.filters.filter((f) => f !== wanted) });
      });
      chip.append(remove);
      return chip;
    }));
  }

  function drawSites(rows, current) {
    const select = $("site");
    const sites = rows.map((r) => r.value).filter((v) => v);
    if (current.site && !sites.includes(current.site)) sites.push(current.site);
    const options = [element("option", "all sites")];
    options[0].value = "";
    for (const site of sites.sort()) {
      const option = element("option", site);
      option.value = site;
      options.push(option);
    }
    select.replaceChildren(...options);
    select.value = current.site;
    select.parentElement.hidden = sites.length < 2 && !current.site;
  }

  // -- the world map (served by the dashboard: /static/world.json) ----------------------------

  let world = null; // the map's shapes once fetched; false when the dashboard has none

  async function worldShapes() {
    if (world !== null) return world;
    try {
      const answer = await fetch("/static/world.json");
      if (!answer.ok) throw new Error((await answer.json()).error);
      const body = await answer.json();
      const map = $("world");
      map.setAttribute("viewBox", body.viewBox);
      map.replaceChildren(...body.locations.map((place) => {
        const path = svg("path", { d: place.path });
        path.dataset.country = place.id.toUpperCase();
        path.dataset.name = place.name;
        path.append(svg("title", {}));
        return path;
      }));
      $("world-credit").textContent = body.credit;
      map.hidden = false;
      world = true;
    } catch (error) {
      $("world-credit").textContent = `no map: ${error.message}`;
      world = false;
    }
    return world;
  }

  async function drawWorld(rows, current) {
    if (!(await worldShapes())) return;
    const visits = new Map(rows.filter((r) => r.value).map((r) => [r.value, r.visits]));
    const most = Math.max(1, ...visits.values());
    for (const path of $("world").querySelectorAll("path")) {
      const code = path.dataset.country;
      const count = visits.get(code);
      path.querySelector("title").textContent = `${path.dataset.name}: ${count || 0} visits`;
      if (count) {
        path.dataset.visits = count;
        path.style.fill = `color-mix(in srgb, var(--page_view) ${Math.round(15 + (85 * count) / most)}%, #edf0f4)`;
        path.onclick = () => {
          const wanted = `country=${code}`;
          if (!current.filters.includes(wanted)) go({ ...current, filters: [...current.filters, wanted] });
        };
      } else {
        delete path.dataset.visits;
        path.style.fill = "";
        path.onclick = null;
      }
    }
  }

  // -- funnel, paths and retention (/api/funnel, /api/paths, /api/retention) -----------------

  async function ask(kind, params) {
    const answer = await fetch(`/api/${kind}?${params}`, { headers: { Accept: "application/json" } });
    const body = await answer.json();
    if (!answer.ok) throw new Error(body.error || `the dashboard answered ${answer.status}`);
    return body;
  }

  function percent(share) {
    return share === null || share === undefined ? "–" : `${(share * 100).toFixed(1)}%`;
  }

  function seconds(value) {
    if (value === null || value === undefined) return "";
    return `median ${shown("visit_duration_s", value)} from the step before`;
  }

  function cardFailed(card, error) {
    let note = card.querySelector(".card-error");
    if (!note) {
      note = element("p", null, "card-error");
      card.append(note);
    }
    note.textContent = error ? error.message : "";
    note.hidden = !error;
  }

  // A card's figures asked for and drawn: its state says loading, ok or error (and why),
  // and an answer to an older view is dropped.
  async function inCard(card, number, work) {
    card.dataset.state = "loading";
    try {
      const drawn = await work();
      if (number !== asked || drawn === false) return;
      cardFailed(card, null);
      card.dataset.state = "ok";
    } catch (error) {
      if (number !== asked) return;
      cardFailed(card, error);
      card.dataset.state = "error";
    }
  }

  async function loadFunnel(current, number) {
    const card = $("funnel-card");
    $("funnel-steps").value = current.steps.join("\n");
    $("funnel-per").value = current.per;
    $("funnel-within").value = current.within;
    $("funnel-hint").hidden = current.steps.length >= 2;
    if (current.steps.length < 2) {
      $("funnel").replaceChildren();
      $("dropped").hidden = true;
      cardFailed(card, null);
      return;
    }
    const params = viewParams(current, "since");
    for (const step of current.steps) params.append("step", step);
    params.set("per", current.per);
    params.set("within", current.within);
    await inCard(card, number, async () => {
      const body = await ask("funnel", params);
      if (number !== asked) return false;
      drawFunnel(body, current);
      if (current.dropped) {
        params.set("dropped", current.dropped);
        params.set("top", "10");
        const instead = await ask("funnel", params);
        if (number !== asked) return false;
        drawDropped(instead, current);
      } else {
        $("dropped").hidden = true;
      }
      return true;
    });
  }

  function drawFunnel(body, current) {
    const unit = body.per === "person" ? "people" : "visits";
    $("funnel-span").textContent = `${unit}, the last step within ${current.within}`;
    const first = Math.max(1, body.steps.length ? body.steps[0].count : 1);
    const items = [];
    body.steps.forEach((step, index) => {
      const item = element("li", null, "step bar");
      item.dataset.step = step.step;
      item.dataset.count = step.count;
      item.style.setProperty("--share", `${Math.round((100 * step.count) / first)}%`);
      item.append(
        element("span", step.step, "value"),
        element("span", `${shown("visits", step.count)} ${unit}`, "number"),
        element("span", index === 0 ? "" : `${percent(step.conversion_from_first)} of the first, ${percent(step.conversion_from_previous)} of the step before`, "share"),
        element("span", seconds(step.median_seconds_from_previous), "median"),
      );
      items.push(item);
      const next = body.steps[index + 1];
      if (next) {
        const gone = step.count - next.count;
        const drop = element("li", null, "drop");
        const button = element("button", `${shown("visits", gone)} stopped here: where did they go?`);
        button.type = "button";
        button.dataset.after = String(index + 1);
        button.disabled = gone === 0;
        button.classList.toggle("on", current.dropped === String(index + 1));
        button.addEventListener("click", () => go({ ...state(), dropped: String(index + 1) }));
        drop.append(button);
        items.push(drop);
      }
    });
    $("funnel").replaceChildren(...items);
  }

  function drawDropped(body, current) {
    const unit = body.per === "person" ? "people" : "visits";
    $("dropped-title").textContent = `The ${shown("visits", body.dropped)} ${unit} that stopped after ${body.step}: the pages they viewed next`;
    $("dropped").querySelector("tbody").replaceChildren(...body.paths.map((path) => {
      const tr = element("tr");
      tr.dataset.pages = path.pages.join(" → ");
      tr.dataset.count = path.count;
      tr.append(
        element("td", path.pages.join(" → "), "value"),
        element("td", shown("visits", path.count), "number"),
        element("td", percent(path.share), "number"),
      );
      return tr;
    }));
    $("dropped").hidden = false;
  }

  async function loadPaths(current, number) {
    const card = $("paths-card");
    $("paths-page").value = current.paths;
    $("paths-direction").value = current.direction;
    $("paths-steps").value = current.pathSteps;
    if (!current.paths) {
      $("flow").hidden = true;
      $("paths").hidden = true;
      cardFailed(card, null);
      return;
    }
    const params = viewParams(current, "since");
    params.set("page", current.paths);
    params.set("direction", current.direction);
    params.set("steps", current.pathSteps);
    await inCard(card, number, async () => {
      const body = await ask("paths", params);
      if (number !== asked) return false;
      drawPaths(body);
      return true;
    });
  }

  function drawPaths(body) {
    const before = "to" in body;
    const anchor = before ? body.to : body.from;
    $("paths-span").textContent = `${shown("visits", body.visits)} visits viewed ${anchor}; the ${body.paths.length} paths most taken ${before ? "to" : "from"} it`;
    $("paths").querySelector("tbody").replaceChildren(...body.paths.map((path) => {
      const tr = element("tr");
      const walked = before ? [...path.pages, anchor] : [anchor, ...path.pages];
      tr.dataset.pages = path.pages.join(" → ");
      tr.dataset.visits = path.visits;
      tr.append(
        element("td", walked.join(" → "), "value"),
        element("td", shown("visits", path.visits), "number"),
        element("td", percent(path.share), "number"),
      );
      return tr;
    }));
    $("paths").hidden = false;
    drawFlow(body.paths.map((path) => ({
      pages: before ? [...path.pages, anchor] : [anchor, ...path.pages],
      visits: path.visits,
    })));
  }

  // A flow diagram of the paths shown: a column per step, a bar per page in it as tall as the
  // visits through it, and a band from page to page as wide as the visits that went so.
  function drawFlow(walks) {
    const flow = $("flow");
    const columns = Math.max(0, ...walks.map((walk) => walk.pages.length));
    if (!walks.length || columns < 2) {
      flow.hidden = true;
      return;
    }
    const width = 960;
    const height = 300;
    const bar = 10;
    const gap = 6;
    const nodes = Array.from({ length: columns }, () => new Map());
    const links = new Map();
    for (const walk of walks) {
      walk.pages.forEach((page, column) => {
        nodes[column].set(page, (nodes[column].get(page) || 0) + walk.visits);
        if (column > 0) {
          const key = `${column - 1}\u0000${walk.pages[column - 1]}\u0000${page}`;
          links.set(key, (links.get(key) || 0) + walk.visits);
        }
      });
    }
    const total = Math.max(1, ...nodes.map((column) => Array.from(column.values()).reduce((a, b) => a + b, 0)));
    const most = Math.max(...nodes.map((column) => column.size));
    const scale = (height - 20 - gap * (most - 1)) / total;
    const x = (column) => 10 + (column * (width - 180 - bar)) / (columns - 1);
    const places = nodes.map((column, index) => {
      let y = 10;
      const placed = new Map();
      for (const [page, visits] of [...column.entries()].sort((a, b) => b[1] - a[1])) {
        placed.set(page, { y, size: visits * scale, out: y, in: y, visits, x: x(index) });
        y += visits * scale + gap;
      }
      return placed;
    });
    const drawn = [];
    for (const [key, visits] of [...links.entries()].sort((a, b) => b[1] - a[1])) {
      const [column, from, to] = key.split("\u0000");
      const source = places[Number(column)].get(from);
      const target = places[Number(column) + 1].get(to);
      const thick = visits * scale;
      const y1 = source.out + thick / 2;
      const y2 = target.in + thick / 2;
      source.out += thick;
      target.in += thick;
      const x1 = source.x + bar;
      const x2 = target.x;
      const middle = (x1 + x2) / 2;
      const band = svg("path", { d: `M${x1},${y1} C${middle},${y1} ${middle},${y2} ${x2},${y2}`, class: "band", "stroke-width": Math.max(1, thick) });
      band.dataset.from = from;
      band.dataset.to = to;
      band.dataset.visits = visits;
      const title = svg("title", {});
      title.textContent = `${from} → ${to}: ${visits} visits`;
      band.append(title);
      drawn.push(band);
    }
    places.forEach((placed, column) => {
      for (const [page, place] of placed) {
        const node = svg("rect", { x: place.x, y: place.y, width: bar, height: Math.max(1, place.size), class: page.startsWith("(") ? "node edge" : "node" });
        node.dataset.column = column;
        node.dataset.page = page;
        node.dataset.visits = place.visits;
        const label = svg("text", { x: place.x + bar + 4, y: place.y + Math.max(1, place.size) / 2 + 4 });
        label.textContent = `${page} ${place.visits}`;
        drawn.push(node, label);
      }
    });
    flow.setAttribute("viewBox", `0 0 ${width} ${height}`);
    flow.replaceChildren(...drawn);
    flow.hidden = false;
  }

  function cohortOf(current) {
    if (current.cohort) return current.cohort;
    return ["30m", "today", "24h", "7d"].includes(current.range) ? "day" : "week";
  }

  async function loadRetention(current, number) {
    const card = $("retention-card");
    const cohort = cohortOf(current);
    $("cohort").value = cohort;
    const params = viewParams(current, "since");
    params.set("cohort", cohort);
    await inCard(card, number, async () => {
      const body = await ask("retention", params);
      if (number !== asked) return false;
      drawRetention(body);
      return true;
    });
  }

  function drawRetention(body) {
    const periods = Math.max(0, ...body.cohorts.map((row) => row.periods.length));
    const head = element("tr");
    head.append(element("th", body.range.cohort, "value"), element("th", "people", "number"));
    for (let k = 0; k < periods; k += 1) head.append(element("th", String(k), "number"));
    $("retention").querySelector("thead").replaceChildren(head);
    $("retention").querySelector("tbody").replaceChildren(...body.cohorts.map((row) => {
      const tr = element("tr");
      tr.dataset.cohort = row.cohort;
      tr.dataset.people = row.people;
      tr.append(element("td", row.cohort, "value"), element("td", shown("visits", row.people), "number"));
      for (const period of row.periods) {
        const cell = element("td", percent(period.share), "number share");
        cell.dataset.people = period.people;
        if (period.share !== null) cell.style.background = `color-mix(in srgb, var(--page_view) ${Math.round(period.share * 70)}%, #fff)`;
        cell.title = `${period.people} people`;
        tr.append(cell);
      }
      return tr;
    }));
    $("retention-partial").hidden = !body.last_period_partial;
  }

  function loadFlows(current, number) {
    // Not awaited: a funnel over a month of events takes longer than the report it sits by.
    loadFunnel(current, number);
    loadPaths(current, number);
    loadRetention(current, number);
  }

  // -- loading -------------------------------------------------------------------------------

  async function load() {
    const current = state();
    $("range").value = current.range;
    $("custom").hidden = current.range !== "custom";
    $("from").value = current.from;
    $("to").value = current.to;
    $("bots").checked = current.bots;
    $("property").value = current.property;
    $("zone").textContent = current.tz ? `days in ${current.tz}` : "";
    drawFilters(current);
    const number = ++asked;
    loadFlows(current, number);
    let renewing = false;
    document.body.dataset.state = "loading";
    try {
      const answer = await fetch(apiAddress(current), { headers: { Accept: "application/json" } });
      const body = await answer.json();
      if (number !== asked) return;
      if (!answer.ok) throw new Error(body.error || `the dashboard answered ${answer.status}`);
      $("zone").textContent = `days in ${body.range.tz}`;
      drawTotals(body.totals, body.previous ? body.previous.totals : null);
      drawGraph(body.series);
      drawGoals(body.goals || []);
      renewing = body.renewing === true;
      for (const panel of document.querySelectorAll(".panel")) {
        const dim = panelDimension(panel, current);
        drawPanel(panel, dim, body.breakdowns[dim] || [], current);
      }
      if (current.property) {
        await loadProperty(current, number);
      }
      drawSites(body.breakdowns.site || [], current);
      await drawWorld(body.breakdowns.country || [], current);
      $("errors").hidden = true;
      $("status").textContent = `${body.range.from.slice(0, 16)} to ${body.range.to.slice(0, 16)} · as of ${body.as_of.slice(11, 19)} UTC`;
      document.body.dataset.state = "ok";
    } catch (error) {
      if (number !== asked) return;
      $("errors").textContent = error.message;
      $("errors").hidden = false;
      document.body.dataset.state = "error";
    }
    clearTimeout(timer);
    // A kept reading being renewed: the newer figures are seconds away, not a minute.
    timer = setTimeout(load, renewing ? 3000 : current.range === "30m" ? 15000 : 60000);
  }

  async function loadProperty(current, number) {
    const address = apiAddress(current).replace(/&panel=[^&]*/g, "").replace("&goals=1", "") + `&panel=property:${encodeURIComponent(current.property)}`;
    const answer = await fetch(address, { headers: { Accept: "application/json" } });
    const body = await answer.json();
    if (number !== asked) return;
    if (!answer.ok) throw new Error(body.error || `the dashboard answered ${answer.status}`);
    const panel = document.querySelector('.panel[data-panel="events"]');
    drawPanel(panel, `property:${current.property}`, body.breakdowns[`property:${current.property}`] || [], current);
  }

  function wire() {
    $("range").addEventListener("change", () => {
      const current = state();
      const range = $("range").value;
      if (range === "custom") {
        const today = new Date().toISOString().slice(0, 10);
        go({ ...current, range, from: current.from || today, to: current.to || today });
      } else {
        go({ ...current, range });
      }
    });
    for (const id of ["from", "to"]) {
      $(id).addEventListener("change", () => go({ ...state(), range: "custom", [id]: $(id).value }));
    }
    $("site").addEventListener("change", () => go({ ...state(), site: $("site").value }));
    $("bots").addEventListener("change", () => go({ ...state(), bots: $("bots").checked }));
    $("property-form").addEventListener("submit", (event) => {
      event.preventDefault();
      go({ ...state(), property: $("property").value.trim() });
    });
    for (const panel of document.querySelectorAll(".panel")) {
      for (const button of panel.querySelectorAll(".tabs button")) {
        button.addEventListener("click", () => {
          const current = state();
          go({ ...current, property: panel.dataset.panel === "events" ? "" : current.property, tabs: { ...current.tabs, [panel.dataset.panel]: button.dataset.dim } });
        });
      }
    }
    $("funnel-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const steps = $("funnel-steps").value.split("\n").map((step) => step.trim()).filter((step) => step);
      go({ ...state(), steps, per: $("funnel-per").value, within: $("funnel-within").value, dropped: "" });
    });
    $("paths-form").addEventListener("submit", (event) => {
      event.preventDefault();
      go({ ...state(), paths: $("paths-page").value.trim(), direction: $("paths-direction").value, pathSteps: $("paths-steps").value });
    });
    $("cohort").addEventListener("change", () => go({ ...state(), cohort: $("cohort").value }));
    window.addEventListener("popstate", load);
  }

  wire();
  load();
})();
