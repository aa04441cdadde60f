/* The hosted connect page's glue (no inline scripts: the CSP forbids them).
 * - Buttons say what happens next ("Redirecting to Klaviyo…") once pressed.
 * - "Finishing…" sends the provider's answer on at once.
 * - The result page reports to the window that opened it, only at the session's allowed
 *   origins (postMessage with an exact targetOrigin, so no other origin can receive it),
 *   and closes after a success; without an opener it goes on to the return URL. */
(function () {
  'use strict';

  document.querySelectorAll('[data-redirecting]').forEach(function (el) {
    var announce = function () {
      el.setAttribute('aria-busy', 'true');
      el.textContent = el.getAttribute('data-redirecting');
    };
    if (el.tagName === 'A') el.addEventListener('click', announce);
    else if (el.form) el.form.addEventListener('submit', announce);
  });

  // "Finishing…": the provider's answer goes on by POST, so no code stays in the URL.
  var finishing = document.querySelector('form[data-autosubmit]');
  if (finishing) {
    finishing.submit();
    return;
  }

  var section = document.getElementById('connect-result');
  if (!section) return;
  var result = JSON.parse(section.getAttribute('data-result') || '{}');
  var origins = JSON.parse(section.getAttribute('data-origins') || '[]');
  var returnUrl = section.getAttribute('data-return-url');
  var opener = null;
  try { opener = window.opener && !window.opener.closed ? window.opener : null; } catch (e) { opener = null; }

  if (opener && origins.length) {
    origins.forEach(function (origin) {
      try { opener.postMessage(result, origin); } catch (e) { /* not that origin */ }
    });
    if (result.status === 'success') {
      window.setTimeout(function () { window.close(); }, 800);
    }
    return;
  }
  if (returnUrl) {
    var note = document.querySelector('[data-continuing]');
    if (note) note.textContent = note.getAttribute('data-continuing');
    window.location.replace(returnUrl);
  }
})();
