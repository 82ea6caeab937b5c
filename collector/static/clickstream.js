/* clickstream.js: the browser tracker served by the clickstream collector. No dependencies.
 *
 * <script src="https://COLLECTOR/clickstream.js" data-write-key="KEY" async></script>
 *
 * Attributes: data-write-key (required), data-endpoint (default: this script's origin +
 * /v1/events), data-flush-ms (default 3000), data-respect-gpc ("true": send nothing when the
 * browser signals Global Privacy Control). window.clickstream.optOut() / optIn() remember the
 * visitor's choice in localStorage; track(name, properties) sends a custom event.
 *
 * Events follow the collector's contract; each has an event_id made here, so a batch sent
 * again after a failure carries the same ids and the pipeline counts it once.
 */
(function () {
  "use strict";
  var w = window, d = document, nav = navigator;
  if (w.clickstream && w.clickstream.loaded) return;
  var script = d.currentScript || d.querySelector("script[data-write-key]");
  var attr = function (name) { return script ? script.getAttribute("data-" + name) : null; };
  var writeKey = attr("write-key");
  var endpoint = attr("endpoint") ||
    (script && script.src ? new URL(script.src).origin : location.origin) + "/v1/events";
  var flushMs = parseInt(attr("flush-ms") || "3000", 10);
  var SESSION_IDLE_MS = 30 * 60 * 1000, MAX_BATCH = 50, MAX_QUEUE = 1000;
  var OPT_OUT = "clickstream:opt-out", SESSION = "clickstream:session";
  var ANON = "clickstream:anonymous-id", PENDING = "clickstream:pending";
  var USER = "clickstream:user-id";

  function store(kind) { try { return w[kind]; } catch (e) { return null; } }
  var local = store("localStorage"), session = store("sessionStorage");
  function get(s, k) { try { return s && s.getItem(k); } catch (e) { return null; } }
  function put(s, k, v) { try { if (s) { if (v === null) s.removeItem(k); else s.setItem(k, v); } } catch (e) { /* full or blocked: keep going */ } }

  function uuid() {
    if (w.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = new Uint8Array(16); crypto.getRandomValues(b);
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function optedOut() {
    return get(local, OPT_OUT) === "1" ||
      (attr("respect-gpc") === "true" && nav.globalPrivacyControl === true);
  }

  function anonymousId() {
    var id = get(local, ANON);
    if (!id) { id = uuid(); put(local, ANON, id); }
    return id;
  }

  /* A session lives in sessionStorage (one tab) and ends after 30 idle minutes. */
  function sessionId() {
    var now = Date.now(), saved = null;
    try { saved = JSON.parse(get(session, SESSION) || "null"); } catch (e) { saved = null; }
    if (!saved || now - saved.last > SESSION_IDLE_MS) saved = { id: uuid(), last: now };
    saved.last = now;
    put(session, SESSION, JSON.stringify(saved));
    return saved.id;
  }

  /* A short CSS-like path of the clicked element: tag#id or tag.class, at most 3 levels. */
  function selector(el) {
    var parts = [];
    while (el && el.nodeType === 1 && parts.length < 3) {
      var part = el.tagName.toLowerCase();
      if (el.id) { parts.unshift(part + "#" + el.id); break; }
      var cls = (typeof el.className === "string" ? el.className : "").trim().split(/\s+/)[0];
      parts.unshift(cls ? part + "." + cls : part);
      el = el.parentElement;
    }
    return parts.join(" > ").slice(0, 200);
  }

  var queue = [], sending = false, backoffMs = 0, timer = null;
  try { queue = JSON.parse(get(session, PENDING) || "[]"); } catch (e) { queue = []; }
  put(session, PENDING, null);

  function page() { return location.pathname + location.search; }

  function record(type, extra) {
    if (optedOut()) return;
    var event = {
      event_id: uuid(), type: type, session_id: sessionId(), anonymous_id: anonymousId(),
      page: page(), timestamp: new Date().toISOString(),
      viewport_width: Math.max(1, w.innerWidth), viewport_height: Math.max(1, w.innerHeight)
    };
    var user = get(local, USER);
    if (user) event.user_id = user;
    if (d.referrer) event.referrer = d.referrer;
    for (var k in extra) event[k] = extra[k];
    queue.push(event);
    if (queue.length > MAX_QUEUE) queue.splice(0, queue.length - MAX_QUEUE);
    if (queue.length >= MAX_BATCH) flush();
  }

  function body(batch) {
    return JSON.stringify({ writeKey: writeKey, sent_at: new Date().toISOString(), events: batch });
  }

  /* Send with fetch, keep the batch until the collector said 2xx (its 2xx means the events
   * are in the stream); on 503 or a network error retry later with the same event ids. */
  function flush() {
    if (sending || !queue.length || !writeKey) return;
    var batch = queue.splice(0, MAX_BATCH);
    sending = true;
    fetch(endpoint, {
      method: "POST", body: body(batch), keepalive: true, credentials: "omit",
      headers: { "Content-Type": "text/plain" }
    }).then(function (response) {
      sending = false;
      if (response.ok || (response.status >= 400 && response.status < 500 && response.status !== 429)) {
        backoffMs = 0; /* sent, or refused for good (the answer says why) */
        if (!response.ok && w.console) console.warn("clickstream: batch refused", response.status);
        if (queue.length >= MAX_BATCH) flush();
        return;
      }
      var after = parseInt(response.headers.get("Retry-After") || "0", 10) * 1000;
      retry(batch, after);
    }, function () { sending = false; retry(batch, 0); });
  }

  function retry(batch, afterMs) {
    queue = batch.concat(queue);
    backoffMs = Math.min(60000, Math.max(afterMs, backoffMs ? backoffMs * 2 : 1000));
    clearTimeout(timer);
    timer = setTimeout(function () { timer = null; flush(); schedule(); }, backoffMs);
  }

  function schedule() {
    if (timer) return;
    timer = setTimeout(function () { timer = null; flush(); schedule(); }, flushMs);
  }

  /* The page is going away: hand what is queued to the browser with sendBeacon. If the browser
   * refuses it, keep it for this tab's next page, which sends it (same ids) again. */
  function leave() {
    if (!queue.length || !writeKey) return;
    var left = [];
    while (queue.length) {
      var batch = queue.splice(0, MAX_BATCH);
      var blob = new Blob([body(batch)], { type: "text/plain" });
      if (!(nav.sendBeacon && nav.sendBeacon(endpoint, blob))) left = left.concat(batch);
    }
    if (left.length) put(session, PENDING, JSON.stringify(left.slice(-MAX_QUEUE)));
  }

  var depths = {}, lastPage = null;
  function pageView() {
    if (page() === lastPage) return;
    lastPage = page(); depths = {};
    record("page_view", {});
  }

  function onScroll() {
    var doc = d.documentElement, bottom = w.scrollY + w.innerHeight;
    var percent = Math.min(100, Math.round(100 * bottom / Math.max(1, doc.scrollHeight)));
    [25, 50, 75, 100].forEach(function (mark) {
      if (percent >= mark && !depths[mark]) {
        depths[mark] = true;
        record("scroll", { x: 0, y: Math.round(bottom), properties: { percent: mark } });
      }
    });
  }

  d.addEventListener("click", function (e) {
    record("click", {
      x: Math.max(0, Math.round(e.pageX)), y: Math.max(0, Math.round(e.pageY)),
      properties: { selector: selector(e.target) }
    });
  }, true);
  w.addEventListener("scroll", onScroll, { passive: true });
  ["pushState", "replaceState"].forEach(function (name) {
    var original = history[name];
    history[name] = function () {
      var result = original.apply(this, arguments);
      pageView();
      return result;
    };
  });
  w.addEventListener("popstate", pageView);
  w.addEventListener("pagehide", leave);
  d.addEventListener("visibilitychange", function () { if (d.visibilityState === "hidden") leave(); });

  w.clickstream = {
    loaded: true,
    track: function (name, properties) { record("custom", { properties: { event: String(name), properties: properties || {} } }); },
    /* The visitor is this user from now on, on this device: every later event carries the user
       id beside the anonymous one, which links this device's visits to the person's others. */
    identify: function (userId, traits) {
      if (userId === undefined || userId === null || String(userId) === "") return;
      put(local, USER, String(userId).slice(0, 256));
      record("custom", { properties: { call: "identify", traits: traits || {} } });
    },
    /* Logging out: a new anonymous id and no user id, so the next visitor of a shared device
       is not taken for this one. */
    reset: function () { put(local, USER, null); put(local, ANON, null); },
    flush: flush,
    optOut: function () { put(local, OPT_OUT, "1"); queue = []; },
    optIn: function () { put(local, OPT_OUT, null); }
  };
  pageView();
  schedule();
})();
