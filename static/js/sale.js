/* Live stock, countdowns and local times for the sale pages. The pages work without this
   file: the server renders every state (on sale, not open yet, sold out, ended). This only
   polls the stock endpoints and switches between those states as they change. The server
   stays the judge: a buy is always checked again. */
(function () {
  "use strict";

  var POLL_MS = 1500;
  // The server's words for each status (products/templatetags/shop.py, on <html data-labels>);
  // nothing is re-derived here.
  var WORDS = JSON.parse(document.documentElement.getAttribute("data-labels") || "{}");
  var LABELS = WORDS.badge || {};
  var BUTTON = WORDS.button || {};
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

  /* Times are written in UTC by the server (and stay so in `datetime` and `title`); the
     reader sees their own clock's time, named as such. */
  function showLocalTimes() {
    var nodes = document.querySelectorAll("time[data-local-time]");
    for (var i = 0; i < nodes.length; i++) {
      var at = new Date(nodes[i].getAttribute("datetime"));
      if (isNaN(at.getTime())) continue;
      var options = { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", hour12: false };
      if (nodes[i].getAttribute("data-local-time") === "seconds") options.second = "2-digit";
      try {
        nodes[i].textContent = at.toLocaleString(undefined, options) + " your time";
      } catch (e) { /* an old browser keeps the UTC text */ }
    }
  }

  function randomKey() {
    var bytes = new Uint8Array(16);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    var hex = "";
    for (var i = 0; i < bytes.length; i++) hex += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
    return hex;
  }

  /* The stock meter and badge of one product, on the sale page or a card of the list. */
  function Meter(root) {
    this.root = root;
    this.badge = root.querySelector("[data-status-badge]");
    this.meter = root.querySelector("[data-stock-meter]");
    this.stock = root.querySelector("[data-stock]");
    this.live = root.querySelector("[data-stock-live]");
    this.soldOut = root.querySelector("[data-stock-sold-out]");
    this.ended = root.querySelector("[data-stock-ended]");
    this.bar = root.querySelector(".stock__bar");
    this.fill = root.querySelector(".stock__fill");
    this.countdown = root.querySelector("[data-countdown-panel]");
    this.received = this.meter ? parseInt(this.meter.getAttribute("data-received"), 10) || 0 : 0;
    this.status = root.getAttribute("data-status");
    this.lastStock = this.stock ? this.stock.textContent : null;
  }

  Meter.prototype.render = function (stock, status) {
    if (this.stock && String(stock) !== this.lastStock) {
      this.stock.textContent = stock; // inside an aria-live region: read out when it moves
      this.lastStock = String(stock);
    }
    if (this.bar) {
      this.bar.setAttribute("aria-valuenow", stock);
      this.bar.setAttribute("aria-valuetext", status === "ended" ? "Sale ended"
        : status === "sold_out" ? "Sold out, 0 of " + this.received + " left" : stock + " of " + this.received + " left");
      this.bar.hidden = status === "ended";
      var pct = this.received ? Math.max(0, Math.min(100, Math.round(stock * 100 / this.received))) : 0;
      this.fill.style.width = pct + "%";
      this.fill.classList.toggle("stock__fill--low", pct <= 20);
    }
    if (this.live) {
      this.live.hidden = status === "sold_out" || status === "ended";
      this.soldOut.hidden = status !== "sold_out";
      this.ended.hidden = status !== "ended";
    }
    if (status !== this.status) {
      this.status = status;
      this.root.setAttribute("data-status", status);
      this.root.className = this.root.className.replace(/(product-card|product)--\w+/, "$1--" + status);
      if (this.badge) {
        this.badge.textContent = LABELS[status] || status;
        this.badge.className = "badge badge--" + status;
      }
      if (this.countdown) this.countdown.hidden = status !== "upcoming";
    }
  };

  /* A poller with jitter and backoff; `startsAt` makes it ask again right as a sale opens. */
  function Poller(fetchOnce, nextStart) {
    this.fetchOnce = fetchOnce;
    this.nextStart = nextStart;
    this.failures = 0;
    this.timer = null;
    this.stopped = false;
  }

  Poller.prototype.poll = function () {
    var poller = this;
    clearTimeout(poller.timer);
    if (poller.stopped || document.hidden) return; // resumes on visibilitychange
    poller.fetchOnce()
      .then(function () { poller.failures = 0; })
      .catch(function () { poller.failures += 1; })
      .then(function () { poller.schedule(); });
  };

  Poller.prototype.schedule = function () {
    var poller = this;
    if (poller.stopped) return;
    // +-20% jitter keeps thousands of open pages from polling in lockstep.
    var wait = POLL_MS * Math.min(Math.pow(2, poller.failures), 8) * (0.8 + Math.random() * 0.4);
    var startsAt = poller.nextStart();
    if (startsAt !== null) wait = Math.min(wait, Math.max(startsAt - now(), 500));
    poller.timer = setTimeout(function () { poller.poll(); }, wait);
  };

  Poller.prototype.start = function () {
    var poller = this;
    document.addEventListener("visibilitychange", function () { if (!document.hidden) poller.poll(); });
    poller.poll();
  };

  function getJSON(url) {
    return fetch(url, { cache: "no-store", credentials: "omit", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); });
  }

  function salePage(root) {
    var meter = new Meter(root);
    var startsAt = Date.parse(root.getAttribute("data-starts-at"));
    var form = root.querySelector("[data-buy-form]");
    var button = root.querySelector("[data-buy-button]");
    var label = root.querySelector("[data-buy-label]");
    var quantityField = root.querySelector("[data-quantity-field]");
    var quantity = root.querySelector("#id_quantity");
    var endedNote = root.querySelector("[data-ended-note]");
    var endsFact = root.querySelector("[data-ends-fact]");
    var note = root.querySelector("[data-live-note]");
    var most = form ? parseInt(form.getAttribute("data-most"), 10) || 0 : 0;
    var submitting = false;
    var poller;

    function render(stock, status) {
      meter.render(stock, status);
      if (note) note.hidden = status === "ended";
      if (endedNote) endedNote.hidden = status !== "ended";
      if (form) form.hidden = status === "ended";
      if (endsFact && status === "ended" && endsFact.firstChild) endsFact.firstChild.textContent = "Sale ended ";
      if (quantityField) quantityField.hidden = !(status === "active" || status === "upcoming") || most < 1;
      if (button && !submitting) {
        var open = status === "active" && most > 0;
        button.disabled = !open;
        label.textContent = status === "active" && most < 1 ? "Limit reached" : BUTTON[status] || status;
      }
      if (quantity && status === "active" && stock > 0) quantity.max = Math.max(1, Math.min(most, stock));
      if (status === "ended") poller.stopped = true; // an ended sale does not come back
    }

    poller = new Poller(
      function () { return getJSON(root.getAttribute("data-stock-url")).then(function (d) { render(d.stock, d.status); }); },
      function () { return meter.status === "upcoming" && !isNaN(startsAt) ? startsAt : null; }
    );
    if (note && meter.status !== "ended") note.hidden = false;
    if (form) {
      form.addEventListener("submit", function () {
        submitting = true; // one click, one order (the form also carries an idempotency key)
        setTimeout(function () { button.disabled = true; label.textContent = "Buying…"; }, 0);
      });
    }
    window.addEventListener("pageshow", function (event) {
      if (!event.persisted) return;
      // Back from the order page restored this page as it was: a new buy is a new purchase.
      var key = root.querySelector("[data-form-key]");
      if (key) key.value = randomKey();
      submitting = false;
      poller.stopped = false;
      poller.poll();
    });
    var refusal = root.querySelector("[data-outcome]");
    if (refusal && document.activeElement !== refusal) refusal.focus();
    if (meter.status === "ended") poller.stopped = true; else poller.start();
  }

  function saleList(list) {
    var cards = {};
    var nodes = list.querySelectorAll("[data-card]");
    for (var i = 0; i < nodes.length; i++) cards[nodes[i].getAttribute("data-card")] = new Meter(nodes[i]);

    function watched() {
      var ids = [];
      for (var id in cards) if (cards[id].status !== "ended") ids.push(id);
      return ids;
    }

    function nextStart() {
      var soonest = null;
      for (var id in cards) {
        if (cards[id].status !== "upcoming") continue;
        var at = Date.parse(cards[id].root.getAttribute("data-starts-at"));
        if (!isNaN(at) && (soonest === null || at < soonest)) soonest = at;
      }
      return soonest;
    }

    var poller = new Poller(function () {
      var ids = watched();
      if (!ids.length) { poller.stopped = true; return Promise.resolve(); }
      return getJSON(list.getAttribute("data-stock-url") + "?ids=" + ids.join(",")).then(function (data) {
        for (var i = 0; i < data.results.length; i++) {
          var level = data.results[i], card = cards[String(level.id)];
          if (card) card.render(level.stock, level.status);
        }
      });
    }, nextStart);
    poller.start();
  }

  var anchor = document.querySelector("[data-sale]") || document.querySelector("[data-sale-list]");
  if (anchor) {
    var serverNow = Date.parse(anchor.getAttribute("data-server-now"));
    if (!isNaN(serverNow)) skew = serverNow - Date.now();
  }
  showLocalTimes();
  var page = document.querySelector("[data-sale]");
  if (page) salePage(page);
  var list = document.querySelector("[data-sale-list]");
  if (list) saleList(list);
  tickCountdowns();
  setInterval(tickCountdowns, 250);
})();
