/*! connecthub connect.js: lets a team's page open a connect session.
 *
 *   ConnectHub.open(connectUrl, { onSuccess, onError, onClose })
 *
 * Opens the hosted connect page in a popup and reports its result, received by
 * postMessage from the connecthub origin only (connecthub itself sends it only to the
 * session's allowed_origins). Where popups are blocked (Safari, mobile) the whole page
 * goes to the connect link instead and comes back to the session's success/error URL.
 * No build step, no dependencies.
 */
(function (global) {
  'use strict';

  var WIDTH = 480;
  var HEIGHT = 720;

  function features() {
    var left = (global.screenX || 0) + Math.max(0, ((global.outerWidth || WIDTH) - WIDTH) / 2);
    var top = (global.screenY || 0) + Math.max(0, ((global.outerHeight || HEIGHT) - HEIGHT) / 2);
    return 'popup=yes,width=' + WIDTH + ',height=' + HEIGHT +
      ',left=' + Math.round(left) + ',top=' + Math.round(top);
  }

  function toResult(data) {
    return {
      connectionId: data.connection_id || null,
      endUserId: data.end_user_id,
      provider: data.provider,
      status: data.status,
      error: data.error || null
    };
  }

  function open(connectUrl, options) {
    options = options || {};
    var hubOrigin = new URL(connectUrl, global.location.href).origin;
    var popup = null;
    try {
      popup = global.open(connectUrl, 'connecthub_connect', features());
    } catch (e) {
      popup = null;
    }
    if (!popup || popup.closed || typeof popup.closed === 'undefined') {
      // Blocked: the connect page takes over this window and returns to success_url.
      global.location.assign(connectUrl);
      return { mode: 'redirect', close: function () {} };
    }
    var finished = false;
    var timer = null;

    function cleanup() {
      global.clearInterval(timer);
      global.removeEventListener('message', onMessage);
    }

    function onMessage(event) {
      if (event.origin !== hubOrigin || event.source !== popup) return;
      var data = event.data;
      if (!data || data.type !== 'connecthub:result') return;
      if (data.status === 'success') {
        finished = true;
        cleanup();
        if (options.onSuccess) options.onSuccess(toResult(data));
      } else if (options.onError) {
        // The popup stays open with a Try again button; a later success still counts.
        options.onError(toResult(data));
      }
    }

    global.addEventListener('message', onMessage);
    timer = global.setInterval(function () {
      if (popup.closed) {
        cleanup();
        if (!finished && options.onClose) options.onClose();
      }
    }, 400);
    return {
      mode: 'popup',
      close: function () {
        cleanup();
        try { popup.close(); } catch (e) { /* already gone */ }
      }
    };
  }

  global.ConnectHub = { open: open };
})(window);
