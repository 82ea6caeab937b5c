/* clickstream.js: the browser tracker served by the clickstream collector. No dependencies.
 *
 * <script src="https://COLLECTOR/clickstream.js" data-write-key="KEY" async></script>
 *
 * Attributes: data-write-key (required), data-endpoint (default: this script's origin +
 * /v1/events), data-flush-ms (default 3000), data-respect-gpc ("true": send nothing when the
 * browser signals Global Privacy Control). window.clickstream.optOut() / optIn() remember the
 * visitor's choice in localStorage; track(name, properties) sends a custom event.
 *
 * Each click names the element meant (selector, visible text, link or button) and whether it
 * was dead (nothing happened within a second); each page view, when left, its deepest scroll.
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

  /* What a click was on (docs/collector.md, "What the tracker records"): the element the
   * visitor meant (the closest link, button or named element), a selector for it that stays
   * the same across visits and builds (an id, a data-cs or data-testid attribute, else a
   * short tag.class path without the class names CSS-in-JS tools generate), its visible text
   * (never a form field's value), and whether it is a link or a button. */
  var MEANT = "a[href],button,[role=button],[role=link],input[type=submit],input[type=button]," +
    "summary,[data-cs],[data-testid]";
  var GENERATED_CLASS = /^(css|sc|jsx|svelte|emotion|styled)-|__[A-Za-z0-9_-]{5,}$|^_[A-Za-z0-9]{5,}$|\d{3,}/;
  var GENERATED_ID = /^[:\d]|:|\d{3,}|^(ember|react|radix|headlessui|mui)[-_:]?/i;
  var FORM_FIELD = /^(input|textarea|select|option)$/i;

  function meant(el) {
    var found = el && el.closest ? el.closest(MEANT) : null;
    return found || el;
  }

  function attribute(name, value) { return "[" + name + "=\"" + value.replace(/["\\]/g, "\\$&") + "\"]"; }

  function named(el) {
    var tag = el.tagName.toLowerCase();
    var mark = el.getAttribute("data-cs");
    if (mark) return tag + attribute("data-cs", mark);
    mark = el.getAttribute("data-testid");
    if (mark) return tag + attribute("data-testid", mark);
    if (el.id && !GENERATED_ID.test(el.id)) return tag + "#" + el.id;
    return null;
  }

  function selector(el) {
    var parts = [];
    while (el && el.nodeType === 1 && parts.length < 3 && !/^(body|html)$/i.test(el.tagName)) {
      var name = named(el);
      if (name) { parts.unshift(name); break; }
      var classes = (typeof el.className === "string" ? el.className : "").trim().split(/\s+/)
        .filter(function (c) { return c && !GENERATED_CLASS.test(c); }).slice(0, 2);
      parts.unshift(el.tagName.toLowerCase() + classes.map(function (c) { return "." + c; }).join(""));
      el = el.parentElement;
    }
    return (parts.join(" > ") || "body").slice(0, 200);
  }

  /* The text a visitor sees on the element, at most 64 characters: its aria-label, else its
   * text nodes, skipping form fields and editable regions (what a visitor typed is theirs). */
  function visibleText(el) {
    var label = el.getAttribute("aria-label");
    if (label) return label.replace(/\s+/g, " ").trim().slice(0, 64);
    if (FORM_FIELD.test(el.tagName)) return "";
    var text = "";
    (function walk(node) {
      for (var child = node.firstChild; child && text.length < 200; child = child.nextSibling) {
        if (child.nodeType === 3) text += " " + child.nodeValue;
        else if (child.nodeType === 1 && !FORM_FIELD.test(child.tagName) &&
          !/^(script|style|noscript)$/i.test(child.tagName) && !child.isContentEditable) walk(child);
      }
    })(el);
    return text.replace(/\s+/g, " ").trim().slice(0, 64);
  }

  function kindOf(el) {
    if (el.closest && el.closest("a[href],[role=link]")) return "link";
    if (el.closest && el.closest("button,[role=button],input[type=submit],input[type=button]")) return "button";
    return "other";
  }

  var queue = [], sending = false, backoffMs = 0, timer = null;
  try { queue = JSON.parse(get(session, PENDING) || "[]"); } catch (e) { queue = []; }
  put(session, PENDING, null);

  function page() { return location.pathname + location.search; }

  function record(type, extra) {
    var event = make(type, extra);
    if (event) push(event);
    return event;
  }

  function push(event) {
    queue.push(event);
    if (queue.length > MAX_QUEUE) queue.splice(0, queue.length - MAX_QUEUE);
    if (queue.length >= MAX_BATCH) flush();
  }

  function make(type, extra) {
    if (optedOut()) return null;
    var event = {
      /* An event of an earlier page view (its depth, sent as it is left) keeps that view's
         session: leaving a tab idle for an hour starts no session of its own. */
      event_id: uuid(), type: type, session_id: extra.session_id || sessionId(), anonymous_id: anonymousId(),
      page: page(), timestamp: new Date().toISOString(),
      viewport_width: Math.max(1, w.innerWidth), viewport_height: Math.max(1, w.innerHeight)
    };
    var user = get(local, USER);
    if (user) event.user_id = user;
    if (d.referrer) event.referrer = d.referrer;
    for (var k in extra) event[k] = extra[k];
    return event;
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
    navigated(); /* the page is being left */
    reportDepth();
    if (!queue.length || !writeKey) return;
    var left = [];
    while (queue.length) {
      var batch = queue.splice(0, MAX_BATCH);
      var blob = new Blob([body(batch)], { type: "text/plain" });
      if (!(nav.sendBeacon && nav.sendBeacon(endpoint, blob))) left = left.concat(batch);
    }
    if (left.length) put(session, PENDING, JSON.stringify(left.slice(-MAX_QUEUE)));
  }

  /* Scroll depth: the deepest a page view was scrolled, as a share of the document's height
   * (the bottom of the viewport over the page's height), reported once when the page is left
   * (or hidden, or replaced by a single-page-app navigation), naming its page view. */
  var depths = {}, lastPage = null, view = null, deepest = 0, depthReported = true;
  function depthNow() {
    var doc = d.documentElement;
    return Math.min(1, (w.scrollY + w.innerHeight) / Math.max(1, doc.scrollHeight, w.innerHeight));
  }
  function reportDepth() {
    if (depthReported || !view) return;
    depthReported = true;
    deepest = Math.max(deepest, depthNow());
    record("scroll", {
      x: 0, y: Math.round(deepest * d.documentElement.scrollHeight), page: view.page,
      session_id: view.session_id,
      properties: { max_depth: Math.round(deepest * 1000) / 1000, view: view.event_id }
    });
  }

  function pageView() {
    if (page() === lastPage) return;
    navigated();
    reportDepth();
    lastPage = page(); depths = {};
    view = record("page_view", {});
    deepest = 0; depthReported = !view;
    if (view) deepest = depthNow();
  }

  function onScroll() {
    deepest = Math.max(deepest, depthNow());
    depthReported = depthReported && !view;
    var doc = d.documentElement, bottom = w.scrollY + w.innerHeight;
    var percent = Math.min(100, Math.round(100 * bottom / Math.max(1, doc.scrollHeight)));
    [25, 50, 75, 100].forEach(function (mark) {
      if (percent >= mark && !depths[mark]) {
        depths[mark] = true;
        record("scroll", { x: 0, y: Math.round(bottom), properties: { percent: mark } });
      }
    });
  }

  /* Dead clicks: a click after which, for a second, nothing happens: no navigation (the page
   * left, a history or hash change), no change to the document (a mutation anywhere) and no
   * focus moving. The click is sent when that is known, `dead` true or false. Clicks on form
   * fields, with a modifier key (a link opened elsewhere) or on a link to another window
   * are not judged. */
  var DEAD_AFTER_MS = 1000, pending = [];
  function settle(click, dead) {
    var index = pending.indexOf(click);
    if (index < 0) return;
    pending.splice(index, 1);
    clearTimeout(click.timer);
    if (click.observer) click.observer.disconnect();
    d.removeEventListener("focusin", click.onFocus, true);
    if (click.judged) click.event.properties.dead = dead;
    push(click.event);
  }
  /* A navigation (the page left, a history or hash change) is the latest click's doing; the
     clicks before it had less than their second to show anything: sent unjudged. */
  function navigated() {
    var clicks = pending.slice();
    clicks.forEach(function (click, index) {
      if (index < clicks.length - 1) click.judged = false;
      settle(click, false);
    });
  }

  d.addEventListener("click", function (e) {
    var target = meant(e.target);
    var event = make("click", {
      x: Math.max(0, Math.round(e.pageX)), y: Math.max(0, Math.round(e.pageY)),
      properties: { selector: selector(target), text: visibleText(target), kind: kindOf(target) }
    });
    if (!event) return;
    var link = target.closest ? target.closest("a[href]") : null;
    var judged = !FORM_FIELD.test(target.tagName) && !target.isContentEditable &&
      !e.ctrlKey && !e.metaKey && !e.shiftKey && !e.altKey &&
      !(link && link.target && link.target !== "_self");
    /* Each click watched on its own: four clicks on a button that does nothing are four
       dead clicks (and a rage click), not three settled by the next. */
    var click = { event: event, judged: judged, observer: null, timer: null, onFocus: null };
    var alive = function () { settle(click, false); };
    click.onFocus = alive;
    if (w.MutationObserver) {
      click.observer = new MutationObserver(alive);
      click.observer.observe(d.documentElement, { subtree: true, childList: true, attributes: true, characterData: true });
    }
    d.addEventListener("focusin", alive, true);
    click.timer = setTimeout(function () { settle(click, true); }, DEAD_AFTER_MS);
    pending.push(click);
  }, true);
  w.addEventListener("hashchange", navigated);
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
