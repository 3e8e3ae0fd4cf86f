// Host side of the TeamsJS messages for the sandbox's Teams client page:
// answers the tab's initialize, getContext and authentication.getAuthToken,
// and shows the simulated user's calls with Answer, Decline and Hang up.
"use strict";
(function () {
  var body = document.body;
  var upn = body.dataset.upn;
  var base = body.dataset.base;
  var frame = document.getElementById("tab");
  var q = "?upn=" + encodeURIComponent(upn);

  function log(text) {
    var li = document.createElement("li");
    li.textContent = new Date().toISOString().slice(11, 19) + " " + text;
    var ol = document.getElementById("host-log");
    ol.appendChild(li);
    while (ol.children.length > 50) ol.removeChild(ol.firstChild);
  }

  async function getJSON(method, path) {
    var res = await fetch(base + path, { method: method, cache: "no-store" });
    var data = await res.json();
    if (!res.ok) throw new Error(data.error || "HTTP " + res.status);
    return data;
  }

  var runtime = JSON.stringify({ apiVersion: 4, hostVersionsInfo: {}, isLegacyTeams: false,
    supports: { app: {}, appEntity: {}, authentication: {}, pages: { appButton: {}, tabs: {} }, teamsCore: {} } });

  async function answer(func) {
    switch (func) {
      case "initialize":
        return ["content", "web", runtime, "2.0.0"];
      case "getContext":
        var ctx = await getJSON("GET", "api/context" + q);
        ctx.theme = themeSel.value;
        return [ctx];
      case "authentication.getAuthToken":
        try {
          return [true, (await getJSON("POST", "api/token" + q)).token];
        } catch (e) {
          return [false, e.message];
        }
      default:
        return null; // not part of this host: no answer, as for an unsupported call
    }
  }

  window.addEventListener("message", function (evt) {
    if (evt.source !== frame.contentWindow) return;
    var d = evt.data;
    if (!d || typeof d !== "object" || typeof d.func !== "string" || typeof d.id !== "number") return;
    log("tab → " + d.func);
    var origin = evt.origin;
    var src = evt.source;
    answer(d.func).then(function (args) {
      if (args === null) return;
      var reply = { id: d.id, args: args };
      if (d.uuid) reply.uuid = d.uuid;
      src.postMessage(reply, origin === "null" ? "*" : origin);
      log("host → " + d.func + (d.func === "authentication.getAuthToken" ? (args[0] ? " (token)" : " refused: " + args[1]) : ""));
    });
  });

  var themeSel = document.getElementById("theme");
  themeSel.value = body.dataset.theme || "default";
  themeSel.addEventListener("change", function () {
    // Host-initiated message: no id, as TeamsJS hosts send them.
    frame.contentWindow.postMessage({ func: "themeChange", args: [themeSel.value] }, tabOrigin());
    log("host → themeChange " + themeSel.value);
  });
  function tabOrigin() {
    try { return new URL(frame.src, window.location.href).origin; } catch (e) { return "*"; }
  }

  document.getElementById("reload-tab").addEventListener("click", function () {
    frame.contentWindow.location.reload();
  });

  // ---- the user's Teams calls ----
  var labels = { ringing: "Incoming call", dialing: "Calling…", active: "In call", held: "On hold", ended: "Ended" };
  function button(cls, text, action, id) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = cls;
    b.textContent = text;
    b.addEventListener("click", function () {
      getJSON("POST", "api/calls/" + encodeURIComponent(id) + "/" + action + q).catch(function (e) { log(action + " failed: " + e.message); });
    });
    return b;
  }
  var last = "";
  function render(calls) {
    // Rebuild only on change, so a button is not replaced under the pointer.
    var key = JSON.stringify(calls);
    if (key === last) return;
    last = key;
    var ul = document.getElementById("teams-calls");
    ul.textContent = "";
    document.getElementById("no-calls").hidden = calls.length > 0;
    calls.forEach(function (c) {
      var li = document.createElement("li");
      li.className = "teams-call";
      li.dataset.id = c.id;
      li.dataset.state = c.state;
      var who = document.createElement("div");
      who.className = "who";
      who.textContent = c.remote_name ? c.remote_name + " (" + c.remote_user + ")" : (c.remote_user || "unknown");
      var st = document.createElement("div");
      st.className = "state sim";
      st.textContent = (labels[c.state] || c.state) + (c.federated ? " · external" : "") +
        (c.state === "active" || c.state === "held" ? " · ↓" + c.packets_in + " ↑" + c.packets_out : "");
      li.appendChild(who);
      li.appendChild(st);
      if (c.state === "ringing" && c.inbound) {
        li.appendChild(button("answer", "Answer", "answer", c.id));
        li.appendChild(button("decline", "Decline", "decline", c.id));
      } else if (c.state !== "ended") {
        li.appendChild(button("hangup", "Hang up", "hangup", c.id));
      }
      ul.appendChild(li);
    });
  }
  async function poll() {
    for (;;) {
      try { render((await getJSON("GET", "api/calls" + q)).calls); } catch (e) { /* shown on next success */ }
      await new Promise(function (r) { setTimeout(r, 700); });
    }
  }
  if (body.dataset.phones === "true") poll();
})();
