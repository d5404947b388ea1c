// Autopatch Portal: the blade's small behaviours (dialogs, fly-in, selection, column order, errors).
// Loaded as a file: the Content Security Policy allows no inline script.
(function () {
  "use strict";

  function dialog() { return document.getElementById("dialog"); }
  function flyin() { return document.getElementById("flyin"); }

  function closeDialog() {
    var d = dialog();
    if (d && d.open) { d.close(); }
  }

  function closeFlyin() {
    var f = flyin();
    if (!f || f.hidden) { return; }
    f.hidden = true;
    var opener = document.querySelector("[data-flyin-opener]");
    if (opener) { opener.removeAttribute("data-flyin-opener"); opener.focus(); }
  }

  function updateSelection() {
    var main = document.getElementById("blade-main");
    if (!main) { return; }
    var boxes = main.querySelectorAll(".row-select");
    var checked = main.querySelectorAll(".row-select:checked");
    var all = main.querySelector("[data-select-all]");
    if (all) {
      all.checked = boxes.length > 0 && checked.length === boxes.length;
      all.indeterminate = checked.length > 0 && checked.length < boxes.length;
    }
    main.querySelectorAll("[data-needs-selection]").forEach(function (el) { el.disabled = checked.length === 0; });
    var counter = main.querySelector("[data-selection-count]");
    if (counter) { counter.textContent = checked.length ? checked.length + " selected" : ""; }
    boxes.forEach(function (box) { box.closest("tr").classList.toggle("selected", box.checked); });
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches("[data-select-all]")) {
      document.querySelectorAll("#blade-main .row-select").forEach(function (box) { box.checked = target.checked; });
    }
    if (target.matches("[data-select-all], .row-select")) { updateSelection(); }
  });

  document.addEventListener("click", function (event) {
    var target = event.target;
    var move = target.closest("[data-move]");
    if (move) {
      var item = move.closest("li");
      if (move.dataset.move === "up" && item.previousElementSibling) {
        item.parentNode.insertBefore(item, item.previousElementSibling);
      } else if (move.dataset.move === "down" && item.nextElementSibling) {
        item.parentNode.insertBefore(item.nextElementSibling, item);
      }
      move.focus();
      return;
    }
    if (target.closest("[data-close-dialog]")) { closeDialog(); return; }
    if (target.closest("[data-close-flyin]")) { closeFlyin(); return; }
    var dismiss = target.closest("[data-dismiss]");
    if (dismiss) { var region = document.querySelector(dismiss.dataset.dismiss); if (region) { region.innerHTML = ""; } return; }
    var toggle = target.closest("[data-nav-toggle]");
    if (toggle) {
      var open = document.body.classList.toggle("nav-open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      return;
    }
    var link = target.closest(".device-link");
    if (link) {
      document.querySelectorAll("[data-flyin-opener]").forEach(function (el) { el.removeAttribute("data-flyin-opener"); });
      link.setAttribute("data-flyin-opener", "");
    }
    // A click on a row (not on its checkbox or link) opens that device's details.
    var row = target.closest("#blade-main tbody tr[data-device]");
    if (row && !target.closest("input, a, button, label")) {
      var rowLink = row.querySelector(".device-link");
      if (rowLink) { rowLink.click(); }
    }
    // Menus close when one of their items is chosen or when clicking elsewhere.
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (!menu.contains(target) || target.closest(".menu-item")) { menu.open = false; }
    });
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      closeFlyin();
      document.querySelectorAll("details.menu[open]").forEach(function (menu) { menu.open = false; });
    }
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.status >= 400) {
      // Refusals (4xx) and tenant errors (502) are shown, never silently dropped.
      var toast = document.getElementById("toast");
      event.detail.shouldSwap = true;
      event.detail.isError = false;
      if (toast && event.detail.target.id !== "dialog-body") {
        event.detail.target = toast;
      }
      event.detail.swapOverride = "innerHTML";
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target.id === "dialog-body") {
      var d = dialog();
      if (d && !d.open) { d.showModal(); }
      var focusable = target.querySelector("select, input[type=checkbox], button.primary, button");
      if (focusable) { focusable.focus(); }
    }
    if (target.id === "flyin-body") {
      var f = flyin();
      f.hidden = false;
      var title = f.querySelector("#flyin-title");
      if (title) { title.focus(); }
    }
    if (target.id === "toast" && target.innerHTML.trim()) {
      window.setTimeout(function () { target.innerHTML = ""; }, 8000);
    }
    updateSelection();
  });

  document.addEventListener("DOMContentLoaded", updateSelection);
})();
