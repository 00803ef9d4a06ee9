// sluis launcher: a button with data-copy="ID" copies the text of the
// element ID (a command) to the clipboard and says so in its own words
// (data-done). Loaded by the launcher only; the command is selectable
// without it.
"use strict";
(function () {
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest("[data-copy]") : null;
    if (!b) return;
    var el = document.getElementById(b.getAttribute("data-copy"));
    if (!el || !navigator.clipboard) return;
    navigator.clipboard.writeText(el.textContent).then(function () {
      var out = document.getElementById(b.getAttribute("data-copy") + "-copied");
      if (out) out.textContent = b.getAttribute("data-done") || "";
    });
  });
})();
