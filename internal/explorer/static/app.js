// Verdict explorer: follow new blocks without reloading the page. The
// server sends a "block" event for every block it reads (server-sent
// events at data-events); the page then fetches itself again and swaps
// in the new <main>. Without EventSource, or when the server refuses a
// stream (it bounds their number: 503), it polls every three seconds. A
// page the server is too busy to draw (503), or will not draw for this
// client yet (429: it bounds each client's rate), keeps the content shown.
"use strict";
(function () {
  var body = document.body;
  var state = document.getElementById("live-state");
  var heightEl = document.getElementById("live-height");
  var busy = false, again = false, last = 0, polling = null;
  window.explorerRefreshes = 0;

  function setState(text) { if (state) state.textContent = text; }

  function refresh() {
    if (busy) { again = true; return; }
    var now = Date.now();
    if (now - last < 1000) { setTimeout(refresh, 1000 - (now - last)); return; }
    busy = true; last = now;
    fetch(location.href, { headers: { "Accept": "text/html" }, cache: "no-store" })
      .then(function (r) {
        if (r.status === 503 || r.status === 429) { setState("· busy, retrying"); return null; }
        return r.text();
      })
      .then(function (html) {
        if (html === null) return;
        // DOMParser never runs scripts; the server escaped every text.
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("main"), main = document.getElementById("main");
        if (fresh && main && fresh.innerHTML !== main.innerHTML) {
          main.replaceChildren.apply(main, Array.prototype.slice.call(fresh.childNodes).map(function (n) { return document.adoptNode(n); }));
        }
        var h = doc.getElementById("live-height");
        if (h && heightEl) heightEl.textContent = h.textContent;
        window.explorerRefreshes++;
      })
      .catch(function () { setState("· offline, retrying"); })
      .finally(function () { busy = false; if (again) { again = false; refresh(); } });
  }

  function poll() {
    setState("· polling");
    if (polling === null) polling = setInterval(refresh, 3000);
  }

  if (window.EventSource && body.dataset.events) {
    var es = new EventSource(body.dataset.events);
    es.addEventListener("open", function () { setState("· live"); });
    es.addEventListener("error", function () {
      // A refused stream (503) is closed for good: poll instead.
      if (es.readyState === EventSource.CLOSED) poll();
      else setState("· reconnecting");
    });
    es.addEventListener("block", function (ev) {
      try {
        var d = JSON.parse(ev.data);
        if (heightEl && typeof d.height === "number") heightEl.textContent = String(d.height);
      } catch (e) { /* a malformed event only skips the number */ }
      setState("· live");
      refresh();
    });
  } else {
    poll();
  }

  document.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest("[data-copy]") : null;
    if (!b) return;
    var src = document.getElementById(b.getAttribute("data-copy"));
    if (!src || !navigator.clipboard) return;
    navigator.clipboard.writeText(src.textContent).then(function () { b.textContent = "Copied"; }, function () { b.textContent = "Select and copy"; });
  });
})();
