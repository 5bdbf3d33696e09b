/* The room page's client: WebSocket with reconnect and backoff, an outbox of unacked changes (messages,
 * edits, deletes) that survives reconnects and reloads (resent in order after a rate_limited pause, at
 * once after a server_error), catch-up by seq, presence, read marks, older history on scroll, and a
 * long-poll fallback. Every text goes into the page through textContent, never as HTML. */
(function () {
  "use strict";
  // The page's facts come as data attributes (no inline script: the Content-Security-Policy allows
  // scripts from files only); the CSRF token too, as its cookie is HttpOnly.
  var facts = document.getElementById("room").dataset;
  var room = facts.room, me = facts.user, maxLength = +facts.maxLength, protocol = facts.protocol;
  var list = document.getElementById("messages");
  var statusEl = document.getElementById("status");
  var presenceEl = document.getElementById("presence");
  var form = document.getElementById("composer"), input = document.getElementById("text");
  var outboxKey = "chat-outbox:" + room + ":" + me;
  var staff = !!facts.staff;
  var unreadEl = document.getElementById("unread"), olderButton = document.getElementById("older");
  var sendButton = document.getElementById("send"), cancelEdit = document.getElementById("cancel-edit");
  var seen = {};            // message id -> <li>, so a message shows once whatever path it came by
  var applied = {};         // seq -> true for every entry of the stream applied
  var lastId = 0;           // highest seq applied with nothing missing below it
  var oldest = 0;           // lowest message id shown (older ones load on scroll)
  var unread = +facts.unread || 0, readSent = 0, readAt = 0, readTimer = null;
  var editing = null;       // the id of the message the composer edits
  var outbox = load();      // client_id -> change ({type, text, id}; a bare text is a message), until acked
  var inFlight = {};        // client_id -> when last sent on this socket
  var firstSent = {};       // client_id -> when first sent on this socket
  // At most WINDOW messages in flight, oldest first, each sent again after RESEND ms without an
  // ack: a backlog after a long disconnect trickles out instead of flooding the server's queues.
  var WINDOW = 10, RESEND = 5000, STUCK = 20000;
  // server_error: the server failed on that message (a bug in the worker that took it, an outage)
  // and asks for it again after retry_after_ms (0: at once; another worker usually takes it). After
  // FAILED_FREE in a row for one message, each try waits longer (doubling from FAILED_BACKOFF ms up
  // to RESEND), so a wholly broken pool is not hammered.
  var FAILED_FREE = 3, FAILED_BACKOFF = 100;
  var retries = {};         // client_id -> server_errors in a row
  // client_id -> copies sent on this socket not answered yet (each frame that runs gets an ack or
  // an error): an answer to an older copy is stale and moves nothing. Resending the window on
  // every stale rate_limited would multiply the frames in flight (ten refusals, ten windows, a
  // hundred refusals...) until the server's per-socket wait channel overflows.
  var unanswered = {};
  var ws = null, failures = 0, everOpen = false, mode = "ws", pingTimer = null, resendTimer = null, heard = 0;
  var pausedUntil = 0;      // after rate_limited: nothing is sent before this (ms since the epoch)
  var waitingFor = null;    // the refused message the server waits for: sent first when resuming
  var catchingUp = false, catchUpAgain = false;

  function load() {
    try { return JSON.parse(localStorage.getItem(outboxKey)) || {}; } catch (e) { return {}; }
  }
  function save() { localStorage.setItem(outboxKey, JSON.stringify(outbox)); }

  function setStatus(text, cls) {
    statusEl.textContent = text;
    statusEl.className = "status " + cls;
    statusEl.setAttribute("data-state", cls);
  }

  function csrf() { return facts.csrf; }

  // ---- rendering ----------------------------------------------------------------------------
  // The room's stream: messages, edits and deletes, each with its place `seq` (a message's `id` is
  // its seq; an edit's or delete's `id` names the message it changes). Every entry is applied once,
  // whichever path it came by; a gap in seq means something was missed: catch up by seq.
  function entry(frame) {
    var seq = frame.seq || frame.id;  // a server of the previous release sends no seq
    if (applied[seq]) { return; }
    applied[seq] = true;
    if (frame.type === "message") { renderMessage(frame); } else { applyChange(frame); }
    if (frame.user === me) { acked(frame.client_id); }
    if (seq === lastId + 1) {
      while (applied[lastId + 1]) { lastId += 1; }
    } else if (seq > lastId + 1) {
      catchUp();  // a gap: something was missed (a dropped socket, a lost broadcast)
    }
    if (frame.type === "message" && frame.user !== me && document.visibilityState !== "visible") {
      showUnread(unread + 1);
    }
    scheduleRead();
  }

  function span(cls, text) {
    var el = document.createElement("span");
    el.className = cls;
    el.textContent = text;
    return el;
  }

  // A message as it is now (the server sends it in its current state: `rev` the seq of its last change).
  function renderMessage(msg) {
    var atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 40;
    var li = seen[msg.id];
    if (!li) {
      li = document.createElement("li");
      li.setAttribute("data-id", msg.id);
      li.id = "m" + msg.id;  // notifications link to /rooms/<slug>/#m<id>
      // keep id order even when a broadcast overtakes an earlier one, or older history is loaded
      var next = null;
      for (var id in seen) { if (+id > msg.id && (!next || +id < +next.getAttribute("data-id"))) { next = seen[id]; } }
      list.insertBefore(li, next ? next : pendingFirst());
      seen[msg.id] = li;
      if (!oldest || msg.id < oldest) { oldest = msg.id; }
    } else if (+li.getAttribute("data-rev") >= (msg.rev || 0)) {
      return;
    }
    fill(li, msg);
    if (atBottom) { list.scrollTop = list.scrollHeight; }
  }

  function fill(li, msg) {
    li.textContent = "";
    li.setAttribute("data-rev", msg.rev || 0);
    li.setAttribute("data-user", msg.user);
    li.setAttribute("data-ts", msg.ts);
    var when = new Date(msg.ts);  // shown in the browser's time zone
    var time = span("time", when.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"}));
    time.title = when.toLocaleString();
    li.appendChild(time);
    li.appendChild(span("user", msg.user));
    if (msg.deleted) {
      li.className = "deleted";
      li.appendChild(span("text deleted-text", "message deleted"));
      return;
    }
    li.appendChild(span("text", msg.text));
    if (msg.edited) { li.appendChild(span("edited", "(edited)")); }
    if (msg.user === me || staff) {
      var actions = span("actions", "");
      actions.appendChild(button("edit", function () { startEdit(msg.id); }));
      actions.appendChild(button("delete", function () {
        if (window.confirm("Delete this message?")) { queue({type: "delete", id: msg.id}); }
      }));
      li.appendChild(actions);
    }
  }

  function button(label, onClick) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "link " + label;
    b.textContent = label;
    b.addEventListener("click", onClick);
    return b;
  }

  // An edit or delete, applied when newer than what the message shows.
  function applyChange(change) {
    var li = seen[change.id];
    var seq = change.seq || 0;
    if (!li || +li.getAttribute("data-rev") >= seq) { return; }
    var msg = {id: change.id, rev: seq, user: li.getAttribute("data-user"), ts: li.getAttribute("data-ts")};
    if (change.type === "delete") { msg.deleted = true; } else { msg.text = change.text; msg.edited = change.ts; }
    fill(li, msg);
  }

  function pendingFirst() { return list.querySelector("li.pending"); }

  function showPending(clientId, text) {
    if (list.querySelector('li.pending[data-client-id="' + CSS.escape(clientId) + '"]')) { return; }
    var li = document.createElement("li");
    li.className = "pending";
    li.setAttribute("data-client-id", clientId);
    li.appendChild(span("user", me));
    li.appendChild(span("text", text));
    list.appendChild(li);
  }

  // A change the server refused for good (text_too_long, not_yours, message_deleted...): a message
  // is shown as failed with a retry button (a new client_id: the refused one is spent), an edit or
  // delete says why in the status line; neither is resent by itself.
  function failed(clientId, detail) {
    if (!(clientId in outbox)) { return; }
    var change = changeOf(outbox[clientId]);
    delete outbox[clientId];
    delete inFlight[clientId];
    save();
    var li = list.querySelector('li.pending[data-client-id="' + CSS.escape(clientId) + '"]');
    if (li) {
      li.className = "failed";
      li.appendChild(span("why", "not sent: " + detail));
      li.appendChild(button("retry", function () {
        li.parentNode.removeChild(li);
        queue(change);
      }));
    } else if (change.type !== "message") {
      setStatus(change.type + " refused: " + detail, "error");
    }
    flushOutbox();
  }

  // An outbox entry as a change; the outbox of the previous release held bare message texts.
  function changeOf(stored) { return typeof stored === "string" ? {type: "message", text: stored} : stored; }

  // Queue a change (a message, an edit, a delete) for sending, kept until acked.
  function queue(change) {
    var clientId = newId();
    outbox[clientId] = change;
    if (change.type === "message") { showPending(clientId, change.text); }
    save();
    flushOutbox();
  }

  // rate_limited: wait retry_after_ms, then resend the message the server waits for, then every
  // other unacked one in the order first sent (the server refuses the others until it has that one).
  function pause(frame) {
    waitingFor = frame.waiting_for || frame.client_id || waitingFor;
    pausedUntil = Math.max(pausedUntil, Date.now() + frame.retry_after_ms);
    inFlight = {};
    firstSent = {};  // the server answered: the socket works
    setTimeout(flushOutbox, pausedUntil - Date.now());
  }

  // server_error: send that message again after retry_after_ms, backing off only after FAILED_FREE
  // failures of it in a row; the server answered, so the socket is not stuck.
  function retry(frame) {
    var clientId = frame.client_id;
    if (!(clientId in outbox)) { return; }
    var count = retries[clientId] = (retries[clientId] || 0) + 1;
    var delay = frame.retry_after_ms || 0;
    if (count > FAILED_FREE) { delay = Math.max(delay, Math.min(RESEND, FAILED_BACKOFF * Math.pow(2, count - FAILED_FREE - 1))); }
    inFlight[clientId] = Date.now() - RESEND - 1 + delay;  // due in `delay` ms by flushOutbox's rule
    delete firstSent[clientId];
    if (delay > 0) { setTimeout(flushOutbox, delay); } else { flushOutbox(); }
  }

  // Count an answer to one of clientId's copies on this socket; true when it answers the latest.
  function answersLatest(clientId) {
    if (unanswered[clientId] > 0) { unanswered[clientId] -= 1; }
    return !unanswered[clientId];
  }

  function acked(clientId) {
    if (clientId === waitingFor) { waitingFor = null; }
    delete retries[clientId];
    if (clientId in outbox) { delete outbox[clientId]; delete inFlight[clientId]; save(); flushOutbox(); }
    var li = list.querySelector('li.pending[data-client-id="' + CSS.escape(clientId) + '"]');
    if (li) { li.parentNode.removeChild(li); }
  }

  // ---- unread and read marks ----------------------------------------------------------------
  // While the tab is visible, what it shows is read: the last seq is sent (at most once a second);
  // the server tells every tab of the user (a `read` frame), so reading in one clears the others.
  function showUnread(count) {
    unread = count;
    unreadEl.textContent = count ? count + " unread" : "";
    unreadEl.setAttribute("data-unread", count);
    document.title = (count ? "(" + count + ") " : "") + document.title.replace(/^\(\d+\) /, "");
  }
  function sendRead() {
    if (mode === "ws" && ws && ws.readyState === WebSocket.OPEN && lastId > readSent) {
      readSent = lastId;
      readAt = Date.now();
      ws.send(JSON.stringify({type: "read", id: lastId}));
    }
  }
  // At once when the last mark is a second old, else when it will be (a timer is the trailing edge
  // only: a burst of entries still marks its first at once).
  function scheduleRead() {
    if (document.visibilityState !== "visible" || lastId <= readSent) { return; }
    var wait = 1000 - (Date.now() - readAt);
    if (wait <= 0) { return sendRead(); }
    if (!readTimer) {
      readTimer = setTimeout(function () { readTimer = null; if (document.visibilityState === "visible") { sendRead(); } }, wait);
    }
  }
  // A read mark of this user from any tab, in any room: the rooms list's count for that room, and
  // this room's own when it is this room.
  function readElsewhere(frame) {
    var item = document.querySelector('#rooms li[data-room="' + CSS.escape(frame.room) + '"]');
    if (item) {
      item.setAttribute("data-unread", frame.unread);
      var badge = item.querySelector(".unread-count");
      badge.textContent = frame.unread;
      badge.hidden = !frame.unread;
    }
    if (frame.room !== room) { return; }
    if (frame.id > readSent) { readSent = frame.id; }
    showUnread(frame.unread);
  }
  document.addEventListener("visibilitychange", scheduleRead);
  window.addEventListener("pagehide", function () { if (document.visibilityState === "visible") { sendRead(); } });

  // ---- older history ------------------------------------------------------------------------
  function loadOlder() {
    if (!oldest || oldest <= 1 || loadingOlder) { return; }
    loadingOlder = true;
    var height = list.scrollHeight;
    fetch("/rooms/" + room + "/messages?before=" + oldest, {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (msgs) {
        var was = oldest;
        msgs.forEach(renderMessage);
        list.scrollTop += list.scrollHeight - height;  // keep what the user was looking at in place
        if (!msgs.length || oldest === was) { oldest = 1; }
        olderButton.hidden = oldest <= 1;
      })
      .catch(function () {})
      .then(function () { loadingOlder = false; });
  }
  var loadingOlder = false;
  olderButton.addEventListener("click", loadOlder);
  list.addEventListener("scroll", function () { if (list.scrollTop === 0) { loadOlder(); } });

  function presence(frame) {
    presenceEl.textContent = "Online: " + frame.online.join(", ") + (frame.online_more ? " and others" : "");
    presenceEl.setAttribute("data-online", JSON.stringify(frame.online));
  }

  // ---- catch-up by id -----------------------------------------------------------------------
  function catchUp() {
    if (catchingUp) { catchUpAgain = true; return; }
    catchingUp = true;
    fetch("/rooms/" + room + "/messages?after=" + lastId, {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (msgs) { msgs.forEach(entry); })
      .catch(function () {})
      .then(function () {
        catchingUp = false;
        if (catchUpAgain) { catchUpAgain = false; catchUp(); }
      });
  }

  // ---- sending ------------------------------------------------------------------------------
  // Unique for this user (the server keys messages by user and client_id), well under 64 characters.
  function newId() {
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
  }

  function flushOutbox() {
    var now = Date.now();
    if (now < pausedUntil) { return; }
    var order = Object.keys(outbox);
    if (waitingFor in outbox) {
      order = [waitingFor].concat(order.filter(function (clientId) { return clientId !== waitingFor; }));
    }
    // A message resent on this socket for 20 s without an ack, while the server is not pausing
    // us: the socket's way in is broken even if frames still come out (a half-open path to a
    // cut-off interface host): reconnect, the balancer picks a live one.
    if (mode === "ws" && ws && order.some(function (clientId) { return now - (firstSent[clientId] || now) > STUCK; })) {
      return abandon();
    }
    order.slice(0, WINDOW).forEach(function (clientId) {
      if (now - (inFlight[clientId] || 0) > RESEND) {
        inFlight[clientId] = now;
        if (!(clientId in firstSent)) { firstSent[clientId] = now; }
        transmit(clientId, outbox[clientId]);
      }
    });
  }

  function transmit(clientId, stored) {
    var change = changeOf(stored), frame = {type: change.type, client_id: clientId};
    if (change.text !== undefined) { frame.text = change.text; }
    if (change.id !== undefined) { frame.id = change.id; }
    if (mode === "ws") {
      if (ws && ws.readyState === WebSocket.OPEN) {
        unanswered[clientId] = (unanswered[clientId] || 0) + 1;
        ws.send(JSON.stringify(frame));
      }
      return;
    }
    var body = new URLSearchParams(frame);
    fetch("/rooms/" + room + "/messages", {
      method: "POST", credentials: "same-origin", body: body,
      headers: {"X-CSRFToken": csrf()}
    }).then(function (r) { return r.json(); }).then(function (frame) {
      if (frame.type === "ack") { acked(frame.client_id); catchUp(); }
      else if (frame.type === "error" && frame.code === "rate_limited") { pause(frame); }
      else if (frame.type === "error" && frame.code === "server_error" && frame.client_id) { retry(frame); }
      else if (frame.type === "error" && frame.client_id) { failed(frame.client_id, frame.detail); }
    }).catch(function () {});
  }

  // Each non-empty line is a message of its own, queued in order; a line over the server's limit
  // is not queued at all (the server would refuse it every time): the box keeps it and says so.
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (editing !== null) {
      var text = input.value.trim();
      if (text.length > maxLength) {
        setStatus("not saved: the text is " + text.length + " characters, the limit is " + maxLength, "error");
        return;
      }
      if (text) { queue({type: "edit", id: editing, text: text}); }
      return stopEdit();
    }
    var lines = input.value.split(/\r?\n/).filter(function (line) { return line.trim(); });
    var tooLong = lines.filter(function (line) { return line.length > maxLength; });
    if (tooLong.length) {
      setStatus("not sent: a line is " + tooLong[0].length + " characters, the limit is " + maxLength, "error");
      return;
    }
    lines.forEach(function (text) { queue({type: "message", text: text}); });
    input.value = "";
  });

  // Editing: the composer takes the message's text; Send saves it, Escape or Cancel gives up.
  function startEdit(id) {
    editing = id;
    input.value = seen[id].querySelector(".text").textContent;
    sendButton.textContent = "Save";
    cancelEdit.hidden = false;
    input.focus();
  }
  function stopEdit() {
    editing = null;
    input.value = "";
    sendButton.textContent = "Send";
    cancelEdit.hidden = true;
  }
  cancelEdit.addEventListener("click", stopEdit);
  input.addEventListener("keydown", function (event) { if (event.key === "Escape" && editing !== null) { stopEdit(); } });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
  });

  // ---- WebSocket ----------------------------------------------------------------------------
  function connect() {
    mode = "ws";
    setStatus(failures ? "reconnecting…" : "connecting…", "connecting");
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    ws = new WebSocket(scheme + location.host + "/ws/rooms/" + room + "/", [protocol]);
    ws.onopen = function () {
      inFlight = {};  // nothing is in flight on a new socket
      firstSent = {};
      unanswered = {};
      failures = 0;
      everOpen = true;
      setStatus("online", "online");
      statusEl.setAttribute("data-protocol", ws.protocol);  // the subprotocol daphne selected
      catchUp();
      flushOutbox();
      scheduleRead();  // what the page showed before the socket opened is read too
      heard = Date.now();
      pingTimer = setInterval(function () {
        // The server answers every ping: a socket silent for 30 s is dead (its interface host cut
        // off, so no close ever comes): give it up and reconnect through the balancer.
        if (Date.now() - heard > 30000) { return abandon(); }
        ws.send(JSON.stringify({type: "ping"}));
      }, 10000);
      // anything still unacked after a few seconds is sent again (the server keeps one copy)
      resendTimer = setInterval(flushOutbox, 1000);
    };
    ws.onmessage = function (event) {
      heard = Date.now();
      var frame = JSON.parse(event.data);
      if (frame.type === "message" || frame.type === "edit" || frame.type === "delete") { entry(frame); }
      else if (frame.type === "ack") { answersLatest(frame.client_id); acked(frame.client_id); }
      else if (frame.type === "presence") { presence(frame); }
      else if (frame.type === "read") { readElsewhere(frame); }
      else if (frame.type === "error" && frame.client_id && !answersLatest(frame.client_id)) { firstSent = {}; }
      else if (frame.type === "error" && frame.code === "rate_limited") { pause(frame); }
      else if (frame.type === "error" && frame.code === "server_error" && frame.client_id) { retry(frame); }
      else if (frame.type === "error" && frame.client_id) { failed(frame.client_id, frame.detail); }
      else if (frame.type === "error") { setStatus("error: " + frame.detail, "error"); }
      // Other scripts of the page (the notifications badge) take the frames they know from here.
      document.dispatchEvent(new CustomEvent("chat:frame", {detail: frame}));
    };
    ws.onclose = closed;
  }

  function abandon() {
    var dead = ws;
    dead.onclose = dead.onmessage = null;
    try { dead.close(); } catch (e) { /* already closing */ }
    closed();
  }

  function closed() {
    clearInterval(pingTimer);
    clearInterval(resendTimer);
    ws = null;
    failures += 1;
    if (!everOpen && failures >= 3) { return startPolling(); }
    var delay = Math.min(10000, 500 * Math.pow(2, failures - 1)) * (0.5 + Math.random() / 2);
    setStatus("offline, retrying in " + Math.round(delay / 1000) + " s", "offline");
    setTimeout(connect, delay);
  }

  // ---- long-poll fallback -------------------------------------------------------------------
  function startPolling() {
    mode = "poll";
    setStatus("long-polling (no WebSocket)", "polling");
    flushOutbox();
    (function poll() {
      if (mode !== "poll") { return; }
      fetch("/poll/rooms/" + room + "/?after=" + lastId, {credentials: "same-origin"})
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
        .then(function (msgs) { msgs.forEach(entry); setTimeout(poll, 0); })
        .catch(function () { setTimeout(poll, 2000); });
    })();
    setInterval(flushOutbox, 5000);
  }

  // ---- start --------------------------------------------------------------------------------
  var latest = JSON.parse(document.getElementById("history").textContent);  // the latest 50 entries
  if (latest.length) { lastId = (latest[0].seq || latest[0].id) - 1; }
  latest.forEach(entry);
  olderButton.hidden = !oldest || oldest <= 1;
  list.scrollTop = list.scrollHeight;
  showUnread(unread);
  Object.keys(outbox).forEach(function (clientId) {
    var change = changeOf(outbox[clientId]);
    if (change.type === "message") { showPending(clientId, change.text); }
  });
  if (window.WebSocket && !/[?&]transport=poll\b/.test(location.search)) { connect(); } else { startPolling(); }
})();
