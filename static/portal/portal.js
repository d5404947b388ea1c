// Autopatch Portal: the blade's small behaviours (dialogs, fly-in, selection, column order, errors).
// Loaded as a file: the Content Security Policy allows no inline script.
(function () {
  "use strict";

  function dialog() { return document.getElementById("dialog"); }
  function flyin() { return document.getElementById("flyin"); }

  // Where focus goes back to when a dialog or the fly-in closes: the control that opened it, or, when that
  // control was a menu item (hidden once the menu closes), the menu's own button.
  var dialogOpener = null;

  function visibleOpener(el) {
    if (!el || el === document.body) { return null; }
    var menu = el.closest("details.menu");
    return menu ? menu.querySelector("summary") : el;
  }

  function refocus(el) {
    if (el && !document.contains(el) && el.id) { el = document.getElementById(el.id); }
    if (el && document.contains(el)) { el.focus(); return; }
    focusOpenFlyin();  // the fly-in's action is gone (the device changed): its title keeps the admin there
  }

  function closeDialog() {
    var d = dialog();
    if (d && d.open) { d.close(); }
  }

  function closeFlyin() {
    var f = flyin();
    if (!f || f.hidden) { return; }
    f.hidden = true;
    var body = document.getElementById("flyin-body");
    var shown = body.querySelector("[data-flyin-refresh]");
    var pk = shown ? shown.getAttribute("hx-get").match(/(\d+)\/?$/) : null;
    body.innerHTML = "";  // nothing in a closed fly-in listens for changes
    // The address loses ?device= (the fly-in's own URL), so a reload or a bookmark shows what is on screen.
    var url = new URL(window.location.href);
    if (url.searchParams.has("device")) {
      url.searchParams.delete("device");
      history.replaceState(history.state, "", url.pathname + url.search);
    }
    var opener = document.querySelector("[data-flyin-opener]")
      || (pk && document.querySelector("#results tr[data-device='" + pk[1] + "'] .device-link"));
    if (opener) { opener.removeAttribute("data-flyin-opener"); opener.focus(); }
  }

  function focusOpenFlyin() {
    var f = flyin();
    var title = f && !f.hidden && f.querySelector("#flyin-title");
    if (title) { title.focus(); }
  }

  function focusables(container) {
    return Array.prototype.filter.call(
      container.querySelectorAll("a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), select:not([disabled]), textarea, [tabindex]:not([tabindex='-1'])"),
      function (el) { return el.offsetParent !== null || el === document.activeElement; });
  }

  // Tab and Shift+Tab stay inside the open fly-in: it is the one thing the admin is working in.
  function trapTab(event, container) {
    var items = focusables(container);
    if (!items.length) { event.preventDefault(); return; }
    var index = items.indexOf(document.activeElement);
    if (event.shiftKey) {
      if (index <= 0) { event.preventDefault(); items[items.length - 1].focus(); }
    } else if (index === -1 || index === items.length - 1) {
      event.preventDefault();
      items[0].focus();
    }
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
    // With every row of the page ticked, the admin may take every device that matches (up to the limit).
    var bar = main.querySelector("[data-select-matching]");
    var matching = bar && bar.querySelector("[data-matching]");
    var pageAll = boxes.length > 0 && checked.length === boxes.length;
    if (bar) { bar.hidden = !pageAll; }
    if (matching && !pageAll) { setMatching(bar, false); }
    var allMatching = matching && !matching.disabled;
    // An action is offered for the selection only if it can work on at least one selected device.
    var statuses = Array.prototype.map.call(checked, function (box) { return box.closest("tr").dataset.status; });
    main.querySelectorAll("[data-needs-selection]").forEach(function (el) {
      var accepts = (el.dataset.statuses || "").split(" ");
      el.disabled = !allMatching && !statuses.some(function (s) { return accepts.indexOf(s) >= 0; });
    });
    var counter = main.querySelector("[data-selection-count]");
    var count = allMatching ? bar.dataset.total : checked.length;
    if (counter) { counter.textContent = count ? count + " selected" : ""; }
    boxes.forEach(function (box) { box.closest("tr").classList.toggle("selected", box.checked); });
  }

  function setMatching(bar, on) {
    bar.querySelector("[data-matching]").disabled = !on;
    bar.querySelector("[data-matching-off]").hidden = on;
    bar.querySelector("[data-matching-on]").hidden = !on;
    bar.querySelector("[data-select-matching-toggle]").textContent =
      on ? "Select only this page" : "Select all " + bar.dataset.total + " matching devices";
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
    var toggleMatching = target.closest("[data-select-matching-toggle]");
    if (toggleMatching) {
      var bar = toggleMatching.closest("[data-select-matching]");
      setMatching(bar, bar.querySelector("[data-matching]").disabled);
      updateSelection();
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
    var opener = target.closest("[hx-target='#dialog-body']");
    if (opener) { dialogOpener = visibleOpener(opener); }
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

  // A menu closes when keyboard focus leaves it (Tab past its last item), as it does on a click elsewhere.
  document.addEventListener("focusout", function (event) {
    var menu = event.target.closest && event.target.closest("details.menu[open]");
    if (menu && event.relatedTarget && !menu.contains(event.relatedTarget)) { menu.open = false; }
  });

  document.addEventListener("keydown", function (event) {
    var f = flyin();
    var d = dialog();
    if (event.key === "Tab" && f && !f.hidden && !(d && d.open)) { trapTab(event, f); return; }
    if (event.key === "Escape") {
      if (d && d.open) { return; }  // the dialog closes itself and hands focus back (its "close" event)
      var menu = event.target.closest && event.target.closest("details.menu[open]");
      closeFlyin();
      document.querySelectorAll("details.menu[open]").forEach(function (m) { m.open = false; });
      if (menu) { menu.querySelector("summary").focus(); }
    }
  });

  // Keyboard users press Enter on a control that the swap removes (e.g. Next on the page before the last):
  // focus stays in the results instead of falling back to the page body.
  var focusedBeforeRequest = "";
  var PARTNERS = { "page-next": "page-prev", "page-prev": "page-next" };

  document.addEventListener("htmx:beforeRequest", function () {
    focusedBeforeRequest = (document.activeElement && document.activeElement.id) || "";
  });

  function keepFocusIn(target) {
    if (document.activeElement && document.activeElement !== document.body) { return; }
    var partner = PARTNERS[focusedBeforeRequest];
    var fallback = (partner && document.getElementById(partner)) || target.querySelector("#page-range")
      || document.getElementById("device-search");
    if (fallback) { fallback.focus(); }
  }

  // Filters left at "All" stay out of the URL, so the pushed address reads like a link the admin would share.
  document.addEventListener("htmx:configRequest", function (event) {
    if (event.detail.verb !== "get") { return; }
    var params = event.detail.parameters;
    Object.keys(params).forEach(function (key) { if (params[key] === "") { delete params[key]; } });
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
    if (!target || !target.id) { updateSelection(); return; }
    if (target.id === "dialog-body") {
      var d = dialog();
      if (d && !d.open) {
        if (!dialogOpener) { dialogOpener = visibleOpener(event.detail.requestConfig && event.detail.requestConfig.elt); }
        d.showModal();
      }
      var focusable = target.querySelector("select, input[type=checkbox], button.primary, button");
      if (focusable) { focusable.focus(); }
    }
    if (target.id === "flyin-body") {
      var f = flyin();
      if (!f) { return; }
      f.hidden = false;
      var title = f.querySelector("#flyin-title");
      if (title) { title.focus(); }
    }
    if (target.id === "toast" && target.innerHTML.trim()) {
      window.setTimeout(function () { target.innerHTML = ""; }, 8000);
    }
    updateSelection();
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;
    if (target && (target.id === "results" || target.id === "blade-main")) { keepFocusIn(document.getElementById(target.id) || document); }
  });

  document.addEventListener("close", function (event) {
    if (event.target === dialog()) {
      var opener = dialogOpener;
      dialogOpener = null;
      refocus(opener);
    }
  }, true);

  // Back/Forward brings back the whole page from the server: run what page load runs.
  function pageShown() { updateSelection(); focusOpenFlyin(); }
  document.addEventListener("htmx:historyRestore", pageShown);

  // Back (or Forward) fetches the page of the address it goes to. Pressed again before that page came, the first
  // page is dropped: it would be swapped in last, showing the page Back left under the address it went to.
  var restoring = null;
  document.addEventListener("htmx:historyCacheMiss", function (event) {
    if (restoring && restoring.readyState !== XMLHttpRequest.DONE) { restoring.abort(); }
    restoring = event.detail.xhr;
  });
  document.addEventListener("DOMContentLoaded", pageShown);
})();
