// floodgate console: two small comforts, nothing the pages need to work.
// 1. Pages that show something still moving (a running run, the approvals queue) reload every
//    few seconds, but never while you are typing or have typed into a form.
// 2. A decision button disables itself once clicked, so a double click sends one form.
(function () {
  "use strict";
  var every = Number(document.body.getAttribute("data-refresh") || "0");
  var touched = false;
  document.addEventListener("input", function () { touched = true; });
  if (every > 0) {
    window.setInterval(function () {
      var a = document.activeElement;
      var typing = a && (a.tagName === "TEXTAREA" || a.tagName === "INPUT" || a.tagName === "SELECT");
      if (!touched && !typing && document.visibilityState === "visible") {
        window.location.reload();
      }
    }, every * 1000);
  }
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form.checkValidity || form.checkValidity()) {
      window.setTimeout(function () {
        var buttons = form.querySelectorAll("button");
        for (var i = 0; i < buttons.length; i++) { buttons[i].disabled = true; }
      }, 0);
    }
  });
})();
