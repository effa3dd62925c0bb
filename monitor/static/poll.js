// Refreshes the page's live part (#live) every data-refresh milliseconds by
// fetching the same page from the same origin: no other request is made. Forms
// being filled in are left alone.
(function () {
  "use strict";
  var every = parseInt(document.body.getAttribute("data-refresh"), 10) || 5000;
  var indicator = document.getElementById("live-indicator");
  function busy() {
    var a = document.activeElement;
    return a && (a.tagName === "SELECT" || a.tagName === "INPUT" || a.tagName === "TEXTAREA");
  }
  function tick() {
    if (document.hidden || busy()) { schedule(); return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Monitor-Refresh": "1" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
      .then(function (html) {
        var next = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        var live = document.getElementById("live");
        if (next && live && !busy()) { live.replaceWith(next); }
        if (indicator) { indicator.className = "live"; indicator.textContent = "live"; }
      })
      .catch(function () {
        if (indicator) { indicator.className = "live stale"; indicator.textContent = "not refreshing"; }
      })
      .then(schedule);
  }
  function schedule() { window.setTimeout(tick, every); }
  schedule();
})();
