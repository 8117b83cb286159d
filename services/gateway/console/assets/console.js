// Postback console: progressive enhancement only. Every page works without
// this script; with it, the preview follows the form as you type, data
// points insert at the cursor and header rows are added in place.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var form = document.getElementById("endpoint-form");
  if (!form) { return; }

  // Palette: insert a data point at the cursor of the last focused template field.
  var target = document.getElementById("url");
  form.addEventListener("focusin", function (e) {
    if (e.target.classList && e.target.classList.contains("template")) { target = e.target; }
  });
  document.querySelectorAll("button.insert").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () {
      var text = b.getAttribute("data-insert");
      var el = target || document.getElementById("body_template");
      var start = el.selectionStart == null ? el.value.length : el.selectionStart;
      var end = el.selectionEnd == null ? el.value.length : el.selectionEnd;
      el.value = el.value.slice(0, start) + text + el.value.slice(end);
      el.focus();
      el.selectionStart = el.selectionEnd = start + text.length;
      schedule();
    });
  });

  // Add a header row in place.
  var add = document.getElementById("add-header");
  var rows = document.getElementById("header-rows");
  var count = document.getElementById("header_count");
  add.addEventListener("click", function (e) {
    e.preventDefault();
    var last = rows.querySelector(".header-row:last-child");
    var i = parseInt(count.value, 10) || 0;
    var row = last.cloneNode(true);
    row.setAttribute("data-index", String(i));
    row.querySelectorAll("[id],[name],[for],[aria-describedby],[data-field]").forEach(function (el) {
      ["id", "name", "for", "aria-describedby", "data-field"].forEach(function (a) {
        var v = el.getAttribute(a);
        if (v) { el.setAttribute(a, v.replace(/h\d+_/g, "h" + i + "_")); }
      });
    });
    row.querySelectorAll("label").forEach(function (l) { l.textContent = l.textContent.replace(/Header \d+/, "Header " + (i + 1)); });
    row.querySelectorAll("input").forEach(function (el) {
      if (el.type === "checkbox") { el.checked = false; } else { el.value = ""; }
      el.removeAttribute("aria-invalid");
      el.removeAttribute("placeholder");
    });
    row.querySelectorAll(".field-error").forEach(function (p) { p.textContent = ""; });
    rows.appendChild(row);
    count.value = String(i + 1);
    row.querySelector("input[type=text],input:not([type])").focus();
  });

  // A secret row's value is typed hidden.
  form.addEventListener("change", function (e) {
    var m = e.target.id && e.target.id.match(/^h(\d+)_secret$/);
    if (m) {
      var v = document.getElementById("h" + m[1] + "_value");
      if (v) { v.type = e.target.checked ? "password" : "text"; }
    }
  });

  // Live preview: the server renders it through the API as the brand types.
  var preview = document.getElementById("preview");
  var url = form.getAttribute("data-preview");
  var timer = null, seq = 0;
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  }
  function refresh() {
    var mine = ++seq;
    var body = new FormData(form);
    fetch(url, { method: "POST", body: body, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(new Error("preview: HTTP " + r.status)); })
      .then(function (html) {
        if (mine !== seq) { return; }
        preview.innerHTML = html;
        // Errors at their fields, as the API names them.
        form.querySelectorAll(".field-error[data-field]").forEach(function (p) { p.textContent = ""; });
        form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
        preview.querySelectorAll("li[data-field]").forEach(function (li) {
          var f = li.getAttribute("data-field");
          var p = document.getElementById(f + "-error");
          var input = document.getElementById(f);
          if (p) { p.textContent = li.textContent.replace(/^[^:]*: /, ""); }
          if (input) { input.setAttribute("aria-invalid", "true"); }
        });
        preview.setAttribute("data-updated", String(mine));
      })
      .catch(function () { /* the form still works without the preview */ });
  }
  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);
  // The preview's event selector sits outside the form (form="endpoint-form"):
  // choosing an event re-renders the preview with its data at once.
  var chooser = document.getElementById("preview_event");
  if (chooser) { chooser.addEventListener("change", function () { clearTimeout(timer); refresh(); }); }
})();
