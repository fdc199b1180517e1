// hardbound console: the one script. It only reloads a page that asks for
// it (data-refresh on <body>) while the "Refresh" box is ticked; the choice
// is remembered in this browser. Everything works without it.
(function () {
  "use strict";
  var secs = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  var box = document.getElementById("live-refresh");
  if (!secs || !box) { return; }
  var key = "hardbound.refresh." + location.pathname;
  box.checked = localStorage.getItem(key) === "1";
  var timer = null;
  function arm() {
    if (timer) { clearTimeout(timer); timer = null; }
    if (box.checked) { timer = setTimeout(function () { location.reload(); }, secs * 1000); }
  }
  box.addEventListener("change", function () {
    localStorage.setItem(key, box.checked ? "1" : "0");
    arm();
  });
  arm();
})();
