// The Phone App dialler tab. Plain script, no framework; talks to the
// handler's api/ with the Teams SSO token from teams.js.
"use strict";
(function () {
  var $ = function (sel, el) { return (el || document).querySelector(sel); };
  var calls = {}; // id -> {call, el, sent}
  var features = {};
  var stateLabels = {
    ringing_you: "Ringing you in Teams — answer there",
    dialling: "Calling…",
    ringing: "Ringing…",
    incoming: "Incoming call",
    connected: "Connected",
    held: "On hold",
    transferred: "Transferred",
    ended: "Ended"
  };

  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  function apiError(res, data) {
    var e = new Error((data && data.message) || "The request failed (" + res.status + ").");
    e.status = res.status;
    e.code = data && data.code;
    return e;
  }

  async function api(method, path, body) {
    var tok = await TeamsHost.getAuthToken();
    var opts = { method: method, headers: { Authorization: "Bearer " + tok }, cache: "no-store" };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    var res = await fetch(path, opts);
    var data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) throw apiError(res, data);
    return data;
  }

  // ---- messages ----
  var msgTimer = null;
  function showMessage(text) {
    var m = $("#message");
    m.textContent = text;
    m.hidden = !text;
    clearTimeout(msgTimer);
    if (text) msgTimer = setTimeout(function () { m.hidden = true; }, 12000);
  }
  function refuse(text) {
    $("#loading").hidden = true;
    $("#app").hidden = true;
    $("#refused").hidden = false;
    $("#refused-message").textContent = text;
  }
  function fail(e) {
    if (e && e.status === 403) { refuse(e.message); return; }
    showMessage(e && e.message ? e.message : String(e));
  }

  // ---- line state ----
  function renderLine(reg) {
    var el = $("#line-state");
    var st = (reg && reg.state) || "unknown";
    var text = {
      registered: "Line registered",
      registering: "Registering…",
      failed: "Line failing",
      stopped: "Not registered",
      unknown: "Line state unknown"
    }[st] || st;
    if ((st === "failed" || st === "stopped") && reg.reason) {
      text += ": " + reg.reason + (reg.status_code ? " (" + reg.status_code + ")" : "");
    }
    el.className = "pill " + st;
    el.dataset.state = st;
    el.textContent = text;
  }

  // ---- numbers ----
  function normalise(s) { return String(s || "").replace(/[\s\-().\/\u00a0]/g, ""); }
  function numberInput() { return $("#number"); }
  function appendDigit(d) {
    var n = numberInput();
    n.value += d;
    focusEnd(n);
  }

  async function dial(number) {
    var n = normalise(number !== undefined ? number : numberInput().value);
    if (!n) { showMessage("Enter a number or an extension to call."); numberInput().focus(); return; }
    var btn = $("#call");
    btn.disabled = true;
    try {
      var lc = await api("POST", "api/calls", { number: n });
      numberInput().value = "";
      showMessage("");
      upsertCall(lc);
    } catch (e) {
      fail(e);
    } finally {
      btn.disabled = false;
    }
  }

  // ---- calls ----
  function pad(container, onKey) {
    var keys = [["1", ""], ["2", "ABC"], ["3", "DEF"], ["4", "GHI"], ["5", "JKL"], ["6", "MNO"],
      ["7", "PQRS"], ["8", "TUV"], ["9", "WXYZ"], ["*", ""], ["0", "+"], ["#", ""]];
    keys.forEach(function (k) {
      var b = document.createElement("button");
      b.type = "button";
      b.dataset.key = k[0];
      b.setAttribute("aria-label", k[0] === "*" ? "star" : k[0] === "#" ? "hash" : k[0]);
      b.textContent = k[0];
      var small = document.createElement("small");
      small.textContent = k[1] || "\u00a0";
      b.appendChild(small);
      b.addEventListener("click", function () { onKey(k[0]); });
      container.appendChild(b);
    });
  }

  function liveCall() {
    // The call that receives typed keypad tones: connected first, else none.
    var ids = Object.keys(calls);
    for (var i = 0; i < ids.length; i++) {
      if (calls[ids[i]].call.state === "connected") return calls[ids[i]];
    }
    return null;
  }

  // Tones of one call go out one request at a time, in the order typed.
  function sendDTMF(entry, digits) {
    entry.tones = (entry.tones || Promise.resolve()).then(async function () {
      try {
        await api("POST", "api/calls/" + encodeURIComponent(entry.call.id) + "/dtmf", { digits: digits });
        entry.sent += digits;
        $(".dtmf-sent", entry.el).textContent = entry.sent;
      } catch (e) { fail(e); }
    });
    return entry.tones;
  }

  function makeCallEl(entry) {
    var el = $("#call-tpl").content.firstElementChild.cloneNode(true);
    el.dataset.id = entry.call.id;
    pad($(".dtmf-pad", el), function (d) { sendDTMF(entry, d); });
    $(".hold", el).addEventListener("click", async function () {
      var on = entry.call.state !== "held";
      try {
        await api("POST", "api/calls/" + encodeURIComponent(entry.call.id) + "/hold", { on: on });
      } catch (e) { fail(e); }
    });
    $(".hangup", el).addEventListener("click", async function () {
      try {
        await api("POST", "api/calls/" + encodeURIComponent(entry.call.id) + "/hangup", {});
      } catch (e) { fail(e); }
    });
    var toggle = function (btnSel, boxSel, focusSel) {
      $(btnSel, el).addEventListener("click", function () {
        var box = $(boxSel, el);
        box.hidden = !box.hidden;
        this.setAttribute("aria-expanded", String(!box.hidden));
        if (!box.hidden && focusSel) $(focusSel, el).focus();
      });
    };
    toggle(".keypad-toggle", ".keypad", ".dtmf-pad button");
    toggle(".transfer-toggle", ".transfer", ".transfer-target");
    var doTransfer = async function () {
      var t = normalise($(".transfer-target", el).value);
      if (!t) { showMessage("Enter the number or extension to transfer to."); return; }
      try {
        await api("POST", "api/calls/" + encodeURIComponent(entry.call.id) + "/transfer", { target: t });
        showMessage("");
      } catch (e) { fail(e); }
    };
    $(".transfer-go", el).addEventListener("click", doTransfer);
    $(".transfer-target", el).addEventListener("keydown", function (ev) {
      if (ev.key === "Enter") { ev.preventDefault(); doTransfer(); }
    });
    return el;
  }

  function renderAttended() {
    Object.keys(calls).forEach(function (id) {
      var e = calls[id];
      var box = $(".attended", e.el);
      box.textContent = "";
      if (!e.call.can_attended_transfer) return;
      Object.keys(calls).forEach(function (other) {
        var st = calls[other].call.state;
        if (other === id || (st !== "connected" && st !== "held")) return;
        var b = document.createElement("button");
        b.type = "button";
        b.className = "join";
        b.textContent = "Connect with " + (calls[other].call.remote_name || calls[other].call.remote);
        b.addEventListener("click", async function () {
          try {
            await api("POST", "api/calls/" + encodeURIComponent(id) + "/transfer", { call_id: other });
          } catch (err) { fail(err); }
        });
        box.appendChild(b);
      });
    });
  }

  function renderCall(entry) {
    var c = entry.call, el = entry.el;
    el.dataset.state = c.state;
    el.classList.toggle("ended", c.state === "ended");
    $(".remote", el).textContent = c.remote_name ? c.remote_name + " (" + c.remote + ")" : c.remote;
    $(".state", el).textContent = stateLabels[c.state] || c.state;
    $(".pk-in", el).textContent = String(c.packets_to_user || 0);
    $(".pk-out", el).textContent = String(c.packets_from_user || 0);
    var reason = $(".reason", el);
    reason.textContent = c.reason || "";
    reason.hidden = !c.reason;
    var hold = $(".hold", el);
    hold.textContent = c.state === "held" ? "Resume" : "Hold";
    hold.disabled = !(c.state === "connected" || c.state === "held");
    var talking = c.state === "connected" || c.state === "held";
    $(".keypad-toggle", el).disabled = c.state !== "connected";
    $(".transfer-toggle", el).disabled = !talking;
    $(".hangup", el).disabled = c.state === "ended" || c.state === "transferred";
    if (!talking) { $(".keypad", el).hidden = true; $(".transfer", el).hidden = true; }
    tick(entry);
  }

  function tick(entry) {
    var c = entry.call;
    var from = c.answered_at ? Date.parse(c.answered_at) : Date.parse(c.started_at);
    var end = entry.endedAt || Date.now();
    var s = Math.max(0, Math.floor((end - from) / 1000));
    var t = Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
    if (s >= 3600) t = Math.floor(s / 3600) + ":" + String(Math.floor(s / 60) % 60).padStart(2, "0") + ":" + String(s % 60).padStart(2, "0");
    $(".timer", entry.el).textContent = t;
  }

  function upsertCall(c) {
    var entry = calls[c.id];
    if (!entry) {
      if (c.state === "ended") { loadRecent(); return; }
      entry = { call: c, sent: "" };
      entry.el = makeCallEl(entry);
      calls[c.id] = entry;
      $("#calls").appendChild(entry.el);
    }
    entry.call = c;
    if (c.state === "ended" || c.state === "transferred") {
      if (!entry.endedAt) {
        // Keep the ended call (and its reason) in view for a moment; the
        // call log may be written just after the end, so read it twice.
        entry.endedAt = Date.now();
        // A call that never connected says why, beyond the card's life.
        if (c.state === "ended" && !c.answered_at && c.reason) showMessage(c.reason);
        loadRecent();
        setTimeout(function () { removeCall(c.id); loadRecent(); }, 5000);
      }
    }
    renderCall(entry);
    renderAttended();
    $("#active").hidden = Object.keys(calls).length === 0;
  }

  function removeCall(id) {
    var e = calls[id];
    if (!e) return;
    e.el.remove();
    delete calls[id];
    renderAttended();
    $("#active").hidden = Object.keys(calls).length === 0;
  }

  function replaceCalls(list) {
    var seen = {};
    (list || []).forEach(function (c) { seen[c.id] = true; upsertCall(c); });
    Object.keys(calls).forEach(function (id) {
      if (!seen[id] && !calls[id].endedAt) removeCall(id);
    });
  }

  // ---- live stream (server-sent events read with fetch) ----
  function handleEvent(block) {
    var ev = "message", data = "";
    block.split("\n").forEach(function (line) {
      if (line.indexOf("event:") === 0) ev = line.slice(6).trim();
      else if (line.indexOf("data:") === 0) data += line.slice(5).trim();
    });
    if (!data) return ev;
    var v;
    try { v = JSON.parse(data); } catch (e) { return ev; }
    if (ev === "snapshot") { replaceCalls(v.calls); renderLine(v.registration); document.body.dataset.live = "yes"; }
    else if (ev === "call") upsertCall(v);
    else if (ev === "registration") renderLine(v);
    return ev;
  }

  async function stream() {
    var backoff = 1000;
    for (;;) {
      try {
        var tok = await TeamsHost.getAuthToken();
        var res = await fetch("api/events", { headers: { Authorization: "Bearer " + tok }, cache: "no-store" });
        if (!res.ok) {
          var data = null;
          try { data = await res.json(); } catch (e) { data = null; }
          var err = apiError(res, data);
          if (res.status === 403) { refuse(err.message); return; }
          throw err;
        }
        backoff = 1000;
        var reader = res.body.getReader();
        var dec = new TextDecoder();
        var buf = "";
        for (;;) {
          var r = await reader.read();
          if (r.done) break;
          buf += dec.decode(r.value, { stream: true });
          var i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            var block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            if (block.charAt(0) !== ":") handleEvent(block);
          }
        }
      } catch (e) {
        backoff = Math.min(backoff * 2, 15000);
      }
      document.body.dataset.live = "no";
      await sleep(backoff);
    }
  }

  // ---- recent calls and contacts ----
  function callButton(number, label) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "dial-this";
    b.textContent = "Call";
    b.dataset.number = number;
    b.setAttribute("aria-label", "Call " + label);
    b.addEventListener("click", function () { dial(number); });
    return b;
  }

  function fmtDuration(s) { return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0"); }

  async function loadRecent() {
    if (!features.recent) { $("#recent-section").hidden = true; return; }
    try {
      var data = await api("GET", "api/recent");
      var ul = $("#recent");
      ul.textContent = "";
      if (!data.calls.length) {
        var li = document.createElement("li");
        li.className = "empty";
        li.textContent = "No calls yet.";
        ul.appendChild(li);
        return;
      }
      data.calls.forEach(function (c) {
        var li = document.createElement("li");
        li.dataset.id = c.id;
        var what = document.createElement("div");
        what.className = "what";
        var top = document.createElement("div");
        top.className = "who";
        top.textContent = (c.direction === "inbound" ? "↙ " : "↗ ") + (c.name ? c.name + " · " + c.number : c.number);
        if (c.direction === "inbound" && !c.answered) top.classList.add("missed");
        var sub = document.createElement("div");
        sub.className = "sub";
        var when = new Date(c.started_at).toLocaleString([], { dateStyle: "short", timeStyle: "short" });
        sub.textContent = when + " · " + (c.answered ? fmtDuration(c.seconds) : c.result.replace(/_/g, " "));
        if (c.advice) sub.title = c.advice;
        what.appendChild(top);
        what.appendChild(sub);
        li.appendChild(what);
        li.appendChild(callButton(c.number, c.name || c.number));
        ul.appendChild(li);
      });
    } catch (e) { fail(e); }
  }

  var contactsSeq = 0;
  async function loadContacts(q) {
    if (!features.contacts) { $("#contacts-section").hidden = true; return; }
    var seq = ++contactsSeq;
    try {
      var data = await api("GET", "api/contacts?q=" + encodeURIComponent(q || ""));
      if (seq !== contactsSeq) return;
      var ul = $("#contacts");
      ul.textContent = "";
      if (!data.contacts.length) {
        var li = document.createElement("li");
        li.className = "empty";
        li.textContent = q ? "Nobody matches “" + q + "”." : "No contacts with a number.";
        ul.appendChild(li);
        return;
      }
      data.contacts.forEach(function (c) {
        var li = document.createElement("li");
        var what = document.createElement("div");
        what.className = "what";
        var top = document.createElement("div");
        top.className = "who";
        top.textContent = c.name;
        var sub = document.createElement("div");
        sub.className = "sub";
        sub.textContent = [c.label, c.number, c.company].filter(Boolean).join(" · ");
        what.appendChild(top);
        what.appendChild(sub);
        li.appendChild(what);
        li.appendChild(callButton(c.number, c.name + " " + c.number));
        ul.appendChild(li);
      });
    } catch (e) { fail(e); }
  }

  // ---- keyboard ----
  function isTextField(el) {
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.isContentEditable);
  }
  function onKey(ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var k = ev.key;
    var t = ev.target;
    if (t === numberInput() && k === "Enter") { ev.preventDefault(); dial(); return; }
    if (isTextField(t)) return;
    if (!/^[0-9*#+]$/.test(k) && k !== "Backspace") return;
    var live = liveCall();
    if (live && k !== "+" && k !== "Backspace") {
      ev.preventDefault();
      sendDTMF(live, k);
      return;
    }
    var n = numberInput();
    if (k === "Backspace") { ev.preventDefault(); n.value = n.value.slice(0, -1); focusEnd(n); return; }
    // Move to the number field and let the browser type the key there, at
    // the end (the key press lands in the field that has focus after
    // keydown).
    focusEnd(n);
  }
  function focusEnd(n) {
    n.focus();
    n.setSelectionRange(n.value.length, n.value.length);
  }

  function applyTheme(theme) {
    if (theme === "default" || theme === "dark" || theme === "contrast") document.documentElement.dataset.theme = theme;
  }

  // ---- start ----
  async function start() {
    if (!window.TeamsHost || !TeamsHost.hosted) {
      refuse("Open the Phone App from Microsoft Teams: it signs you in with your Teams account.");
      return;
    }
    var me;
    try {
      await TeamsHost.initialize();
      applyTheme((await TeamsHost.getContext()).theme);
      TeamsHost.onThemeChange(applyTheme);
      me = await api("GET", "api/me");
    } catch (e) {
      refuse(e.message || String(e));
      return;
    }
    features = me.features || {};
    $("#me-name").textContent = me.display_name || me.upn;
    $("#me-line").textContent = [me.extension ? "Extension " + me.extension : "", me.phone_number].filter(Boolean).join(" · ");
    renderLine(me.registration);
    $("#loading").hidden = true;
    $("#app").hidden = false;
    document.body.dataset.ready = "yes";

    pad($("#dialpad"), appendDigit);
    $("#call").addEventListener("click", function () { dial(); });
    $("#backspace").addEventListener("click", function () {
      var n = numberInput();
      n.value = n.value.slice(0, -1);
      focusEnd(n);
    });
    document.addEventListener("keydown", onKey);
    var timer = null;
    $("#contacts-q").addEventListener("input", function () {
      clearTimeout(timer);
      var q = this.value;
      timer = setTimeout(function () { loadContacts(q); }, 250);
    });
    $("#contacts-q").addEventListener("keydown", function (ev) {
      if (ev.key === "Enter") { ev.preventDefault(); clearTimeout(timer); loadContacts(this.value); }
    });
    setInterval(function () {
      Object.keys(calls).forEach(function (id) { if (!calls[id].endedAt) tick(calls[id]); });
    }, 1000);

    try { replaceCalls((await api("GET", "api/calls")).calls); } catch (e) { fail(e); }
    stream();
    loadRecent();
    loadContacts("");
    numberInput().focus();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
