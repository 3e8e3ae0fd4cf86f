// Minimal client side of the TeamsJS v2 postMessage protocol: initialize,
// getContext and authentication.getAuthToken. Written for pbx2teams; see
// the package documentation for what is verified against which host.
"use strict";
(function () {
  var parentWin = window.parent !== window ? window.parent : window.opener;
  var parentOrigin = null; // learnt from the first valid answer
  var nextId = 0;
  var pending = {};
  var initialized = null;
  var themeHandler = null;
  var hostPatterns = (document.querySelector('meta[name="teams-hosts"]') || { content: "" })
    .content.split(/\s+/).filter(Boolean);

  function originAllowed(origin) {
    if (origin === window.location.origin) return true;
    var u;
    try { u = new URL(origin); } catch (e) { return false; }
    for (var i = 0; i < hostPatterns.length; i++) {
      var p = hostPatterns[i];
      var m = /^(https?):\/\/(\*\.)?(.+)$/.exec(p);
      if (!m) continue;
      if (u.protocol !== m[1] + ":") continue;
      if (m[2]) {
        if (u.host.length > m[3].length && u.host.slice(-(m[3].length + 1)) === "." + m[3]) return true;
      } else if (u.host === m[3]) {
        return true;
      }
    }
    return false;
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return String(Date.now()) + "-" + Math.random().toString(16).slice(2);
  }

  window.addEventListener("message", function (evt) {
    if (!parentWin || evt.source !== parentWin || !originAllowed(evt.origin)) return;
    var d = evt.data;
    if (!d || typeof d !== "object") return;
    if (typeof d.id !== "number") {
      // A host-initiated message without id, e.g. {func: "themeChange", args: [theme]}.
      if (d.func === "themeChange" && themeHandler && (parentOrigin === null || evt.origin === parentOrigin)) {
        themeHandler(Array.isArray(d.args) ? d.args[0] : undefined);
      }
      return;
    }
    var cb = pending[d.id];
    if (!cb) return;
    if (parentOrigin === null) parentOrigin = evt.origin;
    if (evt.origin !== parentOrigin) return;
    delete pending[d.id];
    cb(Array.isArray(d.args) ? d.args : []);
  });

  function send(func, args, timeoutMs) {
    return new Promise(function (resolve, reject) {
      if (!parentWin) {
        reject(new Error("not hosted"));
        return;
      }
      var id = nextId++;
      var timer = setTimeout(function () {
        delete pending[id];
        reject(new Error("Teams did not answer (" + func + ")."));
      }, timeoutMs || 15000);
      pending[id] = function (a) { clearTimeout(timer); resolve(a); };
      var msg = { id: id, uuid: uuid(), func: func, timestamp: Date.now(), args: args || [] };
      // Only initialize goes out before the host's origin is known; it
      // carries nothing secret.
      parentWin.postMessage(msg, parentOrigin || "*");
    });
  }

  window.TeamsHost = {
    hosted: !!parentWin,
    // onThemeChange registers the handler of the host's theme changes.
    onThemeChange: function (fn) { themeHandler = fn; },
    // initialize resolves with {frameContext, hostClientType}.
    initialize: function () {
      if (!initialized) {
        initialized = send("initialize", ["2.0.0", 4], 10000).then(function (a) {
          return { frameContext: a[0], hostClientType: a[1] };
        });
      }
      return initialized;
    },
    // getContext resolves with {tenantId, userId, upn, theme}.
    getContext: function () {
      return this.initialize().then(function () {
        return send("getContext", []);
      }).then(function (a) {
        var c = a[0] || {};
        var user = c.user || {};
        return {
          tenantId: c.tid || (user.tenant && user.tenant.id) || "",
          userId: c.userObjectId || user.id || "",
          upn: c.userPrincipalName || c.loginHint || user.userPrincipalName || user.loginHint || "",
          theme: c.theme || (c.app && c.app.theme) || "default"
        };
      });
    },
    // getAuthToken resolves with the SSO token for the tab's own API.
    getAuthToken: function () {
      return this.initialize().then(function () {
        return send("authentication.getAuthToken", [undefined, undefined, false]);
      }).then(function (a) {
        if (a[0] === true && typeof a[1] === "string") return a[1];
        throw new Error(typeof a[1] === "string" && a[1] ? a[1] : "Teams refused to sign you in.");
      });
    }
  };
})();
