/* The waiting page, live. Without this file the page reloads itself (a <noscript> meta
   refresh after the line's retry_after); with it, the page polls GET /api/products/<id>/queue/
   as often as retry_after says and updates the place in line in place. Once admitted (or
   once the line closes) it reloads, and the server renders the buy form or the outcome. */
(function () {
  "use strict";

  var root = document.querySelector("[data-line-page]");
  if (!root || root.getAttribute("data-admitted") === "true") return;
  var first = parseInt(root.getAttribute("data-retry-after"), 10);
  if (!first) return; // not in line, or the line is closed: nothing to follow
  var url = root.getAttribute("data-queue-url");
  var rate = parseInt(root.getAttribute("data-rate"), 10) || 1;
  var position = root.querySelector("[data-line-position]");
  var wait = root.querySelector("[data-line-wait]");

  function words(seconds) {
    if (seconds < 60) return "under a minute";
    var minutes = Math.round(seconds / 60);
    if (minutes < 60) return "about " + minutes + " min";
    var rest = minutes % 60;
    return "about " + Math.floor(minutes / 60) + " h " + (rest < 10 ? "0" : "") + rest + " min";
  }

  function poll() {
    if (document.hidden) { document.addEventListener("visibilitychange", poll, { once: true }); return; }
    fetch(url, { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
      .then(function (line) {
        if (line.admitted || line.retry_after === null) { window.location.reload(); return; }
        position.textContent = line.position;
        wait.textContent = words((line.position + 1) * 60 / rate);
        setTimeout(poll, line.retry_after * 1000);
      })
      .catch(function () { setTimeout(poll, 5000); }); // a hiccup: try again a little later
  }

  setTimeout(poll, first * 1000);
})();
