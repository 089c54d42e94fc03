// Room page client. It opts into chatd.v1 (the hello frame tells it its own
// name, so it can mark its own messages "Me", and whether the server keeps
// history) and then uses all of it:
//
//   - History: the first connection of a page load gets the room's latest
//     messages (history on join); older ones are loaded from the HTTP
//     history API when the log is scrolled to the top. Every message with
//     a seq is shown once, in seq order, however it arrived (socket,
//     history API, or an ack).
//   - Outbox: what the person sends gets a client id and waits in an outbox
//     (kept in sessionStorage per room, so a reload keeps it), shown as
//     pending until the server acknowledges it; a matching chat_message or
//     ack turns the pending entry into the message. On every (re)connect
//     each unacknowledged message is sent again with the same id, which the
//     server stores once.
//   - Resume: after a dropped connection (or a server restart) the page
//     reconnects with ?after=<last seq seen> and gets exactly what it
//     missed, then live messages.
//
// People: a message shows its author's display name (the frame's "name")
// with the username beside it, the word "guest" for guests, and "teacher"
// for a course's owner in the course room (data-teacher); my own are "Me".
//
// Language: every string comes from the page's translations (nav.js,
// window.chatdI18n); refusals and closes are explained from their codes, not
// from the server's English details. Times are in the reader's locale and
// time zone (Intl): today's by time, older ones with the date, and the log
// has a line for each day ("Today", "Yesterday", then dates).
//
// Read positions: on a signed-in user's page (data-read) the newest seq
// shown is reported while the page is visible, which clears that room's
// unread count. A guest's page remembers public rooms in localStorage for
// the room list instead.
//
// Chat text is always inserted with textContent, never as HTML. Names and
// message text go in elements of their own with dir="auto", which the
// stylesheet isolates (unicode-bidi: isolate), and lose the explicit
// direction controls U+202A-U+202E and U+2066-U+2069: neither can reorder
// the rest of a line.
(function () {
  "use strict";
  const root = document.getElementById("chat");
  const log = document.getElementById("chat-log");
  const input = document.getElementById("chat-message-input");
  const form = document.getElementById("send-form");
  const statusEl = document.getElementById("status");
  const i18n = window.chatdI18n || { t: function (k) { return k; }, lang: "en", locale: "en" };
  const t = i18n.t;
  const teacher = root.dataset.teacher || "";
  const readURL = root.dataset.read || "";
  const socketURL = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + root.dataset.socket;
  const historyURL = root.dataset.history || "";
  // Stored state is per signed-in account ("" for a guest), so someone who
  // signs in as another user in this tab never resends the first one's
  // messages under the new name.
  const navUser = document.getElementById("nav-user");
  const account = navUser ? navUser.textContent : "";
  const outboxKey = "chatd:outbox:" + account + ":" + root.dataset.socket;
  const namesKey = "chatd:names:" + account;

  const PAGE = 50; // messages per history request
  const TOP = 80; // px from the top of the log at which older messages load
  // Close codes after which reconnecting cannot help.
  const final = { 1003: true, 1007: true, 1008: true, 1009: true, 4401: true, 4403: true };
  // Error codes after which the same message may well go through later.
  const transient = { unavailable: true, rate_limited: true };

  let socket = null;
  let attempt = 0;
  let timer = null;
  let me = null;
  let history = false; // the server stores messages (hello.history)
  // resumable is set by the first hello of a server that keeps history;
  // from then on every connect resumes with ?after=lastSeq instead of
  // getting history on join again.
  let resumable = false;
  // lastSeq is the highest seq this page has been sent over its sockets or
  // in the newest page of history; every seq up to it is shown or older
  // than what is shown. Acks do not move it: with echo off, or messages
  // from several processes, an ack can overtake messages before it.
  let lastSeq = 0;
  let maxSeq = 0; // the highest seq in the log
  let oldestSeq = 0; // the lowest seq in the log (0: none yet)
  let olderDone = false; // nothing older is left to load
  let loadingOlder = false;
  let fillTimer = null;
  const bySeq = new Map(); // seq → its <li>

  // My names: a guest gets a new name on every connection, so "Me" is any
  // name this tab has been given.
  const names = new Set(read(namesKey));
  // The outbox: {id, text, failed?} in the order they were written.
  let outbox = read(outboxKey).filter(function (e) {
    return e && typeof e.id === "string" && typeof e.text === "string";
  });
  const outboxEls = new Map(); // id → its <li>
  // After a transient refusal the whole outbox is sent again, in order,
  // after a delay that grows while refusals go on.
  let retryTimer = null;
  let refusals = 0;

  // The first item of the log says what older history is doing (loading,
  // failed, removed); it is hidden when there is nothing to say.
  const older = document.createElement("li");
  older.className = "system older";
  older.hidden = true;
  log.appendChild(older);

  function read(key) {
    try {
      const v = JSON.parse(sessionStorage.getItem(key));
      return Array.isArray(v) ? v : [];
    } catch (_) {
      return [];
    }
  }

  function write(key, value) {
    try { sessionStorage.setItem(key, JSON.stringify(value)); } catch (_) { /* storage off or full: the page still works */ }
  }

  function saveOutbox() {
    write(outboxKey, outbox.map(function (e) { return e.failed ? { id: e.id, text: e.text, failed: e.failed } : { id: e.id, text: e.text }; }));
  }

  function remember(name) {
    if (!name || names.has(name)) return;
    names.add(name);
    write(namesKey, Array.from(names).slice(-50));
  }

  function isMine(user) { return names.has(user); }

  function newID() {
    if (window.crypto && crypto.randomUUID) {
      try { return crypto.randomUUID(); } catch (_) { /* not a secure context */ }
    }
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.from(b, function (x) { return x.toString(16).padStart(2, "0"); }).join("");
  }

  function seqOf(v) { return typeof v === "number" && v > 0 ? v : 0; }

  // Explicit embeddings, overrides and isolates; see the note at the top.
  const bidiControls = /[\u202A-\u202E\u2066-\u2069]/g;
  function clean(text) { return String(text).replace(bidiControls, ""); }

  function setStatus(cls, text) {
    statusEl.className = "status " + cls;
    statusEl.textContent = text;
  }

  // degraded is set while the server refuses to store messages
  // (unavailable): the socket is open but nothing gets through, which the
  // status must not call "connected". An ack or a new message ends it.
  let degraded = false;
  function setDegraded(on) {
    if (degraded === on) return;
    degraded = on;
    if (socket && socket.readyState === WebSocket.OPEN) {
      setStatus(on ? "degraded" : "online", on ? t("connected, but the server cannot deliver messages right now") : t("connected"));
    }
  }

  function atBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) {
      e.dir = "auto";
      e.textContent = clean(text);
    }
    return e;
  }

  // Dates and times in the reader's locale and time zone.
  const timeFmt = new Intl.DateTimeFormat(i18n.locale, { hour: "2-digit", minute: "2-digit" });
  const dateTimeFmt = new Intl.DateTimeFormat(i18n.locale, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  const fullFmt = new Intl.DateTimeFormat(i18n.locale, { dateStyle: "full", timeStyle: "short" });
  const dayFmt = new Intl.DateTimeFormat(i18n.locale, { weekday: "long", day: "numeric", month: "long" });
  const dayYearFmt = new Intl.DateTimeFormat(i18n.locale, { weekday: "long", day: "numeric", month: "long", year: "numeric" });

  function sameDay(a, b) {
    return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
  }

  function formatTime(iso) {
    const when = iso ? new Date(iso) : new Date();
    if (isNaN(when)) return "";
    return sameDay(when, new Date()) ? timeFmt.format(when) : dateTimeFmt.format(when);
  }

  // dayLabel names the day of d: "Today", "Yesterday", or the date.
  function dayLabel(d) {
    const now = new Date();
    if (sameDay(d, now)) return t("Today");
    const y = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
    if (sameDay(d, y)) return t("Yesterday");
    const s = (d.getFullYear() === now.getFullYear() ? dayFmt : dayYearFmt).format(d);
    return s.charAt(0).toLocaleUpperCase(i18n.locale) + s.slice(1);
  }

  // relayDays puts a line before the first message of each day in the log
  // (messages without a time, still in the outbox, count as today).
  function relayDays() {
    for (const d of Array.from(log.querySelectorAll(":scope > li.day"))) d.remove();
    let prev = null;
    for (const li of Array.from(log.children)) {
      if (!li.classList.contains("msg")) continue;
      const tm = li.querySelector("time.when");
      const d = tm && tm.dateTime ? new Date(tm.dateTime) : new Date();
      if (isNaN(d)) continue;
      if (!prev || !sameDay(prev, d)) {
        const day = document.createElement("li");
        day.className = "day";
        const label = document.createElement("time");
        label.dateTime = d.getFullYear() + "-" + String(d.getMonth() + 1).padStart(2, "0") + "-" + String(d.getDate()).padStart(2, "0");
        label.textContent = dayLabel(d);
        day.appendChild(label);
        log.insertBefore(day, li);
      }
      prev = d;
    }
  }

  function setTime(li, iso) {
    const w = li.querySelector(".when");
    w.textContent = formatTime(iso);
    if (iso) {
      w.dateTime = iso;
      const d = new Date(iso);
      if (!isNaN(d)) w.title = fullFmt.format(d);
    }
  }

  function badge(cls, text) {
    const b = el("span", "badge " + cls, text);
    b.dir = "";
    return b;
  }

  // messageEl makes a message line: its author – "Me", or the display name
  // with the username beside it, marked as a guest or as the teacher –,
  // its time and its text.
  function messageEl(user, mine, text, name) {
    const li = el("li", mine ? "msg mine" : "msg");
    const guest = /^guest-/.test(user || "");
    name = typeof name === "string" ? clean(name).trim() : "";
    if (mine) {
      li.appendChild(el("span", "author", t("Me")));
    } else {
      li.appendChild(el("span", "author", name || user || t("someone")));
      if (name && name !== user && !guest) li.appendChild(el("span", "handle", "@" + user));
    }
    if (guest) li.appendChild(badge("guest", t("guest")));
    if (teacher && user === teacher) li.appendChild(badge("teacher", t("teacher")));
    li.appendChild(el("time", "when", ""));
    li.appendChild(el("span", "text", String(text)));
    return li;
  }

  // Order in the log. Messages carry their seq as data-pos; other lines a
  // position between two seqs, so the log stays in seq order whatever
  // arrives late. Outbox entries stay at the end. Without history (no
  // seqs) lines are simply appended.

  // outboxStart returns the first of the outbox entries at the end of the
  // log (null if there are none).
  function outboxStart() {
    let first = null;
    for (let e = log.lastElementChild; e && e.classList.contains("outbox"); e = e.previousElementSibling) first = e;
    return first;
  }

  // place puts li, which has data-pos pos, after the last line with a
  // lower position (and before the outbox).
  function place(li, pos) {
    let e = log.lastElementChild;
    while (e && e !== older && (e.classList.contains("outbox") || e.classList.contains("day") || Number(e.dataset.pos || 0) > pos)) e = e.previousElementSibling;
    log.insertBefore(li, e ? e.nextSibling : log.firstChild);
  }

  // insert adds a message line; with a seq, in its place. scroll keeps the
  // newest message in view.
  function insert(li, seq, scroll) {
    const stick = atBottom();
    if (seq) {
      li.dataset.pos = seq;
      bySeq.set(seq, li);
      if (!oldestSeq || seq < oldestSeq) oldestSeq = seq;
      if (seq > maxSeq) maxSeq = seq;
      place(li, seq);
    } else {
      log.insertBefore(li, outboxStart());
    }
    relayDays();
    if (stick || scroll) log.scrollTop = log.scrollHeight;
    markSoon();
  }

  // system shows a line from the page itself; pos places it among the
  // messages (default: after the newest).
  function system(text, cls, pos) {
    const stick = atBottom();
    const li = el("li", "system" + (cls ? " " + cls : ""));
    li.appendChild(el("span", "text", text));
    if (pos === undefined && maxSeq) pos = maxSeq + 0.5;
    if (pos) {
      li.dataset.pos = pos;
      place(li, pos);
    } else {
      log.insertBefore(li, outboxStart());
    }
    if (stick) log.scrollTop = log.scrollHeight;
  }

  // showMessage shows a chat message unless its seq is shown already.
  function showMessage(data, seq) {
    const had = seq ? bySeq.get(seq) : null;
    if (had) {
      // Shown already (from history, or as my message after its ack):
      // the server's time is the one to show.
      if (data.datetime) setTime(had, data.datetime);
      return;
    }
    const li = messageEl(data.user, isMine(data.user), data.message, data.name);
    setTime(li, data.datetime);
    insert(li, seq, false);
  }

  // onChat handles a chat_message frame from the socket.
  function onChat(data) {
    setDegraded(false);
    if (log.hasAttribute("aria-busy")) busy();
    const seq = seqOf(data.seq);
    if (seq > lastSeq) lastSeq = seq;
    if (typeof data.id === "string" && outboxEls.has(data.id) && isMine(data.user)) {
      settle(data.id, seq, data.datetime);
    } else {
      showMessage(data, seq);
    }
    scheduleFill();
  }

  // Outbox.

  function entry(id) {
    for (const e of outbox) if (e.id === id) return e;
    return null;
  }

  // render shows outbox entry e as pending or failed, at the end of the log.
  function render(e, note) {
    let li = outboxEls.get(e.id);
    if (!li) {
      li = messageEl(me, true, e.text);
      li.dataset.id = e.id;
      outboxEls.set(e.id, li);
      log.appendChild(li);
      relayDays();
    }
    li.className = "msg mine outbox " + (e.failed ? "failed" : "pending");
    li.querySelector(".when").textContent = e.failed ? t("not sent") : t("sending…");
    const old = li.querySelector(".note");
    if (old) old.remove();
    if (e.failed) {
      const n = el("span", "note", t("Not sent: {reason}", { reason: e.failed }));
      n.appendChild(button("retry", t("Retry"), t("Retry sending this message"), function () { retry(e.id); }));
      n.appendChild(button("edit", t("Edit"), t("Edit this message"), function () { edit(e.id); }));
      n.appendChild(button("discard", t("Discard"), t("Discard this message"), function () { drop(e.id); }));
      li.appendChild(n);
    } else if (note) {
      li.appendChild(el("span", "note", note));
    }
  }

  function button(cls, label, title, onClick) {
    const b = el("button", "link " + cls, label);
    b.type = "button";
    b.title = title;
    b.addEventListener("click", onClick);
    return b;
  }

  // reasonOf says in the reader's language why the server refused a
  // message, from the error frame's code; the server's English detail is
  // shown only for codes this page does not know.
  function reasonOf(code, detail) {
    switch (code) {
      case "unavailable": return t("The chat server is busy, your message was not sent — it will be retried.");
      case "rate_limited": return t("You are sending messages too fast; this one will be sent again in a moment.");
      case "empty_message": return t("The message is empty.");
      case "message_too_long": return t("The message is too long (at most 4000 characters).");
      case "invalid_json": case "not_object": case "invalid_message": case "invalid_id": case "unknown_field": case "unknown_type":
        return t("The message could not be read by the server.");
    }
    return t("The server refused this message: {reason}", { reason: detail || code });
  }

  function send(e) {
    if (!socket || socket.readyState !== WebSocket.OPEN || e.failed) return;
    socket.send(JSON.stringify({ type: "chat_message", message: e.text, id: e.id }));
  }

  function forget(id) {
    outbox = outbox.filter(function (e) { return e.id !== id; });
    saveOutbox();
  }

  // settle turns the outbox entry id into the message it became, stored
  // as seq (0: history off): once, in its place.
  function settle(id, seq, iso) {
    forget(id);
    refusals = 0;
    setDegraded(false);
    const li = outboxEls.get(id);
    outboxEls.delete(id);
    if (!li) return;
    li.remove();
    if (seq && bySeq.has(seq)) return; // shown already, from history
    // Older than what the log shows: it comes with older history, in its
    // place, rather than out of order now.
    if (seq && oldestSeq && seq < oldestSeq && !olderDone) return;
    li.className = "msg mine";
    delete li.dataset.id;
    const note = li.querySelector(".note");
    if (note) note.remove();
    setTime(li, iso || new Date().toISOString());
    insert(li, seq, true);
  }

  // An error frame naming one of my messages. The text is never lost:
  //   - a transient refusal (unavailable: not stored; rate_limited) keeps
  //     the entry pending, says why, and sends the outbox again by itself
  //     after a growing delay (and on every reconnect), as if the
  //     connection had dropped; ids make the repeats harmless;
  //   - any other refusal marks the entry failed, in its place in the log,
  //     with the server's reason and Retry / Edit / Discard. Putting the
  //     text back in the input instead would overwrite whatever the
  //     person is typing meanwhile, and several refused messages would
  //     fight over one box; a failed entry keeps each text where it was
  //     written (and in sessionStorage) until the person decides. Edit
  //     moves it to the input when that is empty.
  function refused(id, code, reason) {
    const e = entry(id);
    if (!e) return;
    if (code === "unavailable") setDegraded(true);
    if (transient[code]) {
      render(e, reason);
      if (!retryTimer) {
        const delay = Math.min(30000, 1000 * Math.pow(2, refusals)) * (0.5 + Math.random() / 2);
        refusals++;
        retryTimer = setTimeout(function () { retryTimer = null; flush(); }, delay);
      }
      return;
    }
    e.failed = reason;
    saveOutbox();
    render(e);
  }

  function retry(id) {
    const e = entry(id);
    if (!e) return;
    delete e.failed;
    saveOutbox();
    render(e);
    send(e);
    reconnectNow();
  }

  function edit(id) {
    const e = entry(id);
    if (!e) return;
    if (input.value.trim() !== "") {
      system(t("Send or clear what is in the message box first; the text stays in the log."));
      input.focus();
      return;
    }
    input.value = e.text;
    drop(id);
    input.focus();
  }

  function drop(id) {
    forget(id);
    const li = outboxEls.get(id);
    outboxEls.delete(id);
    if (li) li.remove();
  }

  // flush sends every pending outbox entry again, with its id, in order:
  // on a new socket, or after a transient refusal.
  function flush() {
    clearTimeout(retryTimer);
    retryTimer = null;
    for (const e of outbox) {
      if (e.failed) continue;
      render(e);
      send(e);
    }
  }

  // Older history.

  // scheduleFill loads older messages soon if the log is at its top, which
  // it also is while it is too short to scroll.
  function scheduleFill() {
    if (fillTimer || olderDone) return;
    fillTimer = setTimeout(function () {
      fillTimer = null;
      if (log.scrollTop < TOP) loadOlder();
    }, 200);
  }

  function loadOlder() {
    if (!history || !historyURL || loadingOlder || olderDone) return;
    if (oldestSeq === 1) {
      olderDone = true;
      return;
    }
    const newest = oldestSeq === 0;
    loadingOlder = true;
    older.textContent = t("loading older messages…");
    older.hidden = false;
    log.setAttribute("aria-busy", "true");
    fetch(historyURL + "?limit=" + PAGE + (newest ? "" : "&before=" + oldestSeq), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(function (body) {
      const msgs = body && Array.isArray(body.messages) ? body.messages : [];
      // Keep what the person is looking at where it is.
      const fromBottom = log.scrollHeight - log.scrollTop;
      for (const m of msgs) {
        const seq = seqOf(m.seq);
        if (!seq) continue;
        // The newest page covers everything up to its last seq, so a
        // resume may start there (later ones come from the socket, which
        // was in the room before this was read).
        if (newest && seq > lastSeq) lastSeq = seq;
        // One of mine still waiting in the outbox (sent before a reload
        // and stored long ago): it is done, and shown here, in its place.
        if (typeof m.id === "string" && outboxEls.has(m.id) && isMine(m.user)) drop(m.id);
        showMessage(m, seq);
      }
      relayDays();
      log.scrollTop = log.scrollHeight - fromBottom;
      log.removeAttribute("aria-busy");
      if (msgs.length < PAGE || oldestSeq === 1) olderDone = true;
      loadingOlder = false;
      older.textContent = olderDone && oldestSeq > 1 ? t("older messages were removed") : "";
      older.hidden = older.textContent === "";
      scheduleFill();
    }).catch(function () {
      loadingOlder = false;
      log.removeAttribute("aria-busy");
      older.textContent = t("could not load older messages; scroll up to try again");
      older.hidden = false;
    });
  }

  log.addEventListener("scroll", function () {
    if (log.scrollTop < TOP) loadOlder();
  }, { passive: true });

  // The socket.

  function onHello(data) {
    me = data.user;
    remember(me);
    history = data.history === true;
    if (history) resumable = true;
    else olderDone = true;
    scheduleFill();
  }

  function connect() {
    timer = null;
    setStatus("connecting", attempt ? t("reconnecting…") : t("connecting…"));
    // The first connect of a page load gets history on join; later ones
    // resume from the last seq seen, so a dropped connection or a server
    // restart costs nothing and shows nothing twice.
    let opened = false;
    socket = new WebSocket(resumable ? socketURL + "?after=" + lastSeq : socketURL, ["chatd.v1"]);
    socket.onopen = function () {
      opened = true;
      attempt = 0;
      degraded = false;
      setStatus("online", t("connected"));
      busy();
      flush();
    };
    socket.onmessage = function (e) {
      let data;
      try { data = JSON.parse(e.data); } catch (_) { return; }
      // presence.js hook (issue 10): every frame, for other scripts.
      window.dispatchEvent(new CustomEvent("chatd:frame", { detail: data }));
      switch (data.type) {
        case "hello": onHello(data); break;
        case "chat_message": onChat(data); break;
        case "ack":
          setDegraded(false);
          if (typeof data.id === "string" && outboxEls.has(data.id)) settle(data.id, seqOf(data.seq), "");
          break;
        case "history_truncated":
          system(t("older messages were removed"), "quiet", seqOf(data.first) ? data.first - 0.5 : undefined);
          break;
        case "error": {
          const reason = reasonOf(data.code, data.detail || data.message);
          if (typeof data.id === "string" && outboxEls.has(data.id)) {
            refused(data.id, data.code, reason);
          } else if (transient[data.code] && outboxEls.size > 0) {
            // Refused before the server read which message it was (the
            // budgets charge a frame before parsing it): every pending
            // message waits and is sent again; ids make that harmless.
            for (const id of Array.from(outboxEls.keys())) {
              refused(id, data.code, reason);
            }
          } else {
            if (data.code === "unavailable") setDegraded(true);
            system("⚠ " + reason);
          }
          break;
        }
        default:
          if (typeof data.message === "string") onChat(data);
      }
    };
    socket.onclose = function (e) {
      socket = null;
      if (!opened && resumable) checkHistoryOff();
      // A slow consumer (1008 too) only missed frames, which a resume
      // brings back: it may reconnect.
      if (final[e.code] && !(e.code === 1008 && /^slow consumer/.test(e.reason))) {
        setStatus("offline", t("disconnected"));
        closed(e.reason || "code " + e.code);
        return;
      }
      // Exponential backoff with full jitter: 0.5 s, 1 s, 2 s … up to 15 s.
      const cap = Math.min(15000, 500 * Math.pow(2, attempt));
      const delay = Math.round(Math.random() * cap) + 250;
      attempt++;
      setStatus("offline", t("offline, retrying in {n} s", { n: Math.ceil(delay / 1000) }));
      timer = setTimeout(connect, delay);
    };
  }

  // closed says why the server closed the connection for good, in words
  // the reader can act on, with a link where there is something to do.
  // The close reasons are the store's revocation reasons.
  function closed(reason) {
    let say = null;
    let link = null;
    switch (reason) {
      case "no longer enrolled":
        say = t("You were removed from this course, so its chat room is closed to you. Ask the teacher if you think this is a mistake.");
        link = { href: "/courses/", text: t("Back to my courses") };
        break;
      case "course deleted":
        say = t("This course was deleted, and its chat room with it.");
        link = { href: "/courses/", text: t("Back to my courses") };
        break;
      case "logged out":
        say = t("You logged out (in this or another tab). Log in again to chat.");
        link = { href: "/accounts/login/?next=" + encodeURIComponent(location.pathname), text: t("Log in") };
        break;
      case "session ended": case "signed out everywhere":
        say = t("Your session ended. Log in again to chat.");
        link = { href: "/accounts/login/?next=" + encodeURIComponent(location.pathname), text: t("Log in") };
        break;
      case "account deleted":
        say = t("This account was deleted.");
        break;
      default:
        say = t("The connection was closed: {reason}. Reload the page to try again.", { reason: reason });
    }
    const stick = atBottom();
    const li = el("li", "system closed");
    li.appendChild(el("span", "text", say));
    if (link) {
      const a = document.createElement("a");
      a.href = link.href;
      a.textContent = link.text;
      a.className = "action";
      li.appendChild(a);
    }
    log.insertBefore(li, outboxStart());
    if (stick) log.scrollTop = log.scrollHeight;
    input.disabled = true;
    form.querySelector("button").disabled = true;
  }

  // busy keeps screen readers from reading out a burst of old messages (the
  // history a connection starts with, or a resume) one by one: from each
  // connect the log is aria-busy until messages have stopped arriving for a
  // moment; live messages after that are announced as they come.
  let busyTimer = null;
  function busy() {
    log.setAttribute("aria-busy", "true");
    clearTimeout(busyTimer);
    busyTimer = setTimeout(function () { if (!loadingOlder) log.removeAttribute("aria-busy"); }, 400);
  }

  // Read positions (signed-in users): the newest seq shown is reported
  // when things have settled, at most every MARK_EVERY ms while messages
  // keep coming (each report is a write to the database), whenever the
  // page becomes visible again, and when it is left.
  const MARK_EVERY = 3000;
  let markTimer = null;
  let marked = -1;
  let markedAt = 0;
  function markSoon() {
    if (!readURL || markTimer) return;
    markTimer = setTimeout(markRead, Math.max(300, markedAt + MARK_EVERY - Date.now()));
  }
  function markRead(leaving) {
    clearTimeout(markTimer);
    markTimer = null;
    if ((document.visibilityState === "hidden" && leaving !== true) || maxSeq <= marked) return;
    const seq = maxSeq;
    markedAt = Date.now();
    fetch(readURL, {
      method: "POST",
      keepalive: true, // also when the page is being left
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ seq: seq }),
    }).then(function (r) {
      if (!r.ok) return;
      if (seq > marked) marked = seq;
      if (window.chatdUnread) window.chatdUnread.refresh();
    }).catch(function () { /* the next message or visit tries again */ });
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") markSoon();
    else if (markTimer) markRead(true);
  });
  // Leaving the page with a report still waiting sends it now.
  window.addEventListener("pagehide", function () { if (markTimer) markRead(true); });

  // A guest's recent public rooms, for the room list (index.js).
  function rememberRoom() {
    if (readURL || !root.dataset.public) return;
    try {
      const key = "chatd:recent";
      let list = JSON.parse(localStorage.getItem(key) || "[]");
      if (!Array.isArray(list)) list = [];
      list = list.filter(function (r) { return r && r.path !== location.pathname; });
      list.unshift({ path: location.pathname, title: "#" + root.dataset.public, at: Date.now() });
      localStorage.setItem(key, JSON.stringify(list.slice(0, 10)));
    } catch (_) { /* storage off: no list */ }
  }

  // checkHistoryOff asks the history API whether the server stopped
  // keeping history (it was restarted with HISTORY=off): then it refuses
  // ?after= with 400 before the upgrade, which a page cannot tell from a
  // server that is down, and the page connects without it.
  function checkHistoryOff() {
    if (!historyURL) return;
    fetch(historyURL + "?limit=1", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.status === 404 ? r.json() : null; })
      .then(function (body) {
        if (body && body.error === "history_off") {
          resumable = false;
          history = false;
        }
      })
      .catch(function () { /* down: try again at the next failure */ });
  }

  // reconnectNow cuts a backoff wait short (the network is back, or the
  // person just sent something).
  function reconnectNow() {
    if (timer) {
      clearTimeout(timer);
      connect();
    }
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    const text = input.value;
    if (text.trim() === "") { input.focus(); return; }
    const e = { id: newID(), text: text };
    outbox.push(e);
    saveOutbox();
    render(e);
    log.scrollTop = log.scrollHeight;
    send(e);
    input.value = "";
    input.focus();
    reconnectNow();
  });

  // presence.js hook (issue 10): send a frame if connected; reports whether it went.
  window.chatdSend = function (obj) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(obj));
    return true;
  };

  window.addEventListener("online", reconnectNow);

  // What was still unsent when the page was left is shown (and sent once
  // connected).
  for (const e of outbox) render(e);
  relayDays();
  rememberRoom();
  if (readURL) {
    marked = -1;
    maxSeq = maxSeq || 0;
    markTimer = setTimeout(markRead, 0); // records the visit even in an empty room
  }
  input.focus();
  connect();
})();
