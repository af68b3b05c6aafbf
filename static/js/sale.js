/* Live stock and countdowns for the sale pages. The pages work without this file:
   it only polls GET /api/products/<id>/stock/ and switches the buy button as the sale
   opens, sells out or ends. The server stays the judge: a buy is always checked again. */
(function () {
  "use strict";

  var POLL_MS = 1500;
  var skew = 0; // server clock minus this browser's clock, from the page's data-server-now

  function now() { return Date.now() + skew; }
  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function formatLeft(ms) {
    var total = Math.max(0, Math.ceil(ms / 1000));
    var days = Math.floor(total / 86400);
    var h = Math.floor((total % 86400) / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
    var clock = (h || days ? pad(h) + ":" : "") + pad(m) + ":" + pad(s);
    return days ? days + (days === 1 ? " day " : " days ") + clock : clock;
  }

  function tickCountdowns() {
    var nodes = document.querySelectorAll("[data-countdown]");
    for (var i = 0; i < nodes.length; i++) {
      var at = Date.parse(nodes[i].getAttribute("datetime"));
      if (isNaN(at)) continue;
      var left = at - now();
      nodes[i].textContent = left > 0 ? formatLeft(left) : "a moment";
    }
  }

  function SalePage(root) {
    this.root = root;
    this.url = root.getAttribute("data-stock-url");
    this.status = root.getAttribute("data-status");
    // The server's words for each status (products/templatetags/shop.py); nothing is re-derived here.
    this.labels = JSON.parse(root.getAttribute("data-labels") || "{}");
    this.startsAt = Date.parse(root.getAttribute("data-starts-at"));
    this.stock = root.querySelector("[data-stock]");
    this.meter = root.querySelector("[data-stock-meter]");
    this.bar = root.querySelector(".stock__bar");
    this.fill = root.querySelector(".stock__fill");
    this.badge = root.querySelector("[data-status-badge]");
    this.button = root.querySelector("[data-buy-button]");
    this.label = root.querySelector("[data-buy-label]");
    this.quantity = root.querySelector("#id_quantity");
    this.countdown = root.querySelector("[data-countdown-panel]");
    this.received = parseInt(this.meter.getAttribute("data-received"), 10) || 0;
    this.timer = null;
    this.failures = 0;
  }

  SalePage.prototype.render = function (stock, status) {
    this.stock.textContent = stock;
    this.bar.setAttribute("aria-valuenow", stock);
    var pct = this.received ? Math.max(0, Math.min(100, Math.round(stock * 100 / this.received))) : 0;
    this.fill.style.width = pct + "%";
    this.fill.classList.toggle("stock__fill--low", pct <= 20);
    if (status !== this.status) {
      this.status = status;
      this.root.setAttribute("data-status", status);
      this.badge.textContent = (this.labels.badge || {})[status] || status;
      this.badge.className = "badge badge--" + status;
      this.countdown.hidden = status !== "upcoming";
    }
    if (!this.submitting) {
      this.button.disabled = status !== "active";
      this.label.textContent = (this.labels.button || {})[status] || status;
    }
    if (this.quantity && status === "active" && stock > 0) {
      var cap = parseInt(this.quantity.getAttribute("data-cap") || this.quantity.max, 10);
      this.quantity.setAttribute("data-cap", cap);
      this.quantity.max = Math.min(cap, stock);
    }
  };

  SalePage.prototype.poll = function () {
    var page = this;
    clearTimeout(page.timer);
    if (document.hidden) return; // resumes on visibilitychange
    fetch(page.url, { cache: "no-store", credentials: "omit", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (data) { page.failures = 0; page.render(data.stock, data.status); })
      .catch(function () { page.failures += 1; })
      .then(function () { page.schedule(); });
  };

  SalePage.prototype.schedule = function () {
    var page = this;
    // +-20% jitter keeps thousands of open pages from polling in lockstep.
    var wait = POLL_MS * Math.min(Math.pow(2, page.failures), 8) * (0.8 + Math.random() * 0.4);
    if (page.status === "upcoming" && !isNaN(page.startsAt)) {
      // Ask again right as the sale opens (and every half second until the server agrees).
      wait = Math.min(wait, Math.max(page.startsAt - now(), 500));
    }
    page.timer = setTimeout(function () { page.poll(); }, wait);
  };

  SalePage.prototype.start = function () {
    var page = this;
    var note = page.root.querySelector("[data-live-note]");
    if (note) note.hidden = false;
    var form = page.root.querySelector("[data-buy-form]");
    if (form) {
      form.addEventListener("submit", function () {
        page.submitting = true; // one click, one order (the form also carries an idempotency key)
        setTimeout(function () { page.button.disabled = true; page.label.textContent = "Buying…"; }, 0);
      });
    }
    document.addEventListener("visibilitychange", function () { if (!document.hidden) page.poll(); });
    window.addEventListener("pageshow", function (event) {
      if (event.persisted) { page.submitting = false; page.poll(); } // back from the order page
    });
    page.poll();
  };

  var root = document.querySelector("[data-sale]");
  if (root) {
    var serverNow = Date.parse(root.getAttribute("data-server-now"));
    if (!isNaN(serverNow)) skew = serverNow - Date.now();
    new SalePage(root).start();
  }
  tickCountdowns();
  setInterval(tickCountdowns, 250);
})();
