// connecthub glue: CSRF header for htmx, toasts. No inline scripts anywhere (CSP).
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // Every htmx request carries the session's CSRF token.
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrfToken();
  });

  function dismissLater(toast) {
    setTimeout(function () {
      toast.classList.add("leaving");
      setTimeout(function () { toast.remove(); }, 400);
    }, 6000);
  }

  function showToast(kind, message) {
    var area = document.getElementById("toasts");
    if (!area) return;
    var toast = document.createElement("div");
    toast.className = "toast toast-" + (kind || "info");
    toast.textContent = message;
    area.appendChild(toast);
    dismissLater(toast);
  }

  // Server responses announce toasts with HX-Trigger: {"toast": {"kind": ..., "message": ...}}.
  document.addEventListener("toast", function (event) {
    var detail = event.detail || {};
    showToast(detail.kind, detail.message);
  });

  // Elements with data-confirm ask before their form is submitted.
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  }, true);

  // Links and buttons with data-loading show that something is under way (Connect buttons
  // leave for the provider's consent page, which can take a moment).
  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("[data-loading]") : null;
    if (!target || target.getAttribute("aria-busy") === "true") return;
    target.setAttribute("aria-busy", "true");
    target.classList.add("is-loading");
    target.textContent = target.getAttribute("data-loading");
  });

  // Buttons with data-copy="#id" copy that element's text (the redirect URI to register).
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy]") : null;
    if (!button) return;
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      showToast("success", "Copied");
    }, function () {
      showToast("error", "Could not copy: select the text and copy it by hand");
    });
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("#toasts .toast").forEach(dismissLater);
  });
})();
