// Presence and typing on the room page (issue 10). room.js owns the
// socket; it dispatches every frame it receives as a "chatd:frame" event
// and offers window.chatdSend(obj). This script keeps the list of people
// in the room, writes joins and leaves as quiet lines in the log, shows
// "alice is typing…", and tells the room when this person types.
// Text is always inserted with textContent, never as HTML.
(function () {
  "use strict";
  const bar = document.getElementById("presence-bar");
  const list = document.getElementById("presence");
  const countEl = document.getElementById("presence-count");
  const typingEl = document.getElementById("typing");
  const log = document.getElementById("chat-log");
  const input = document.getElementById("chat-message-input");
  if (!bar || !list || !typingEl) return;

  let me = null;
  let on = false;          // the server tracks presence (hello.presence)
  let ready = false;       // the first list arrived since the last hello
  let count = 0;
  let big = false;         // the room is over the server's list limit: counts only
  const users = new Map(); // user -> since (ISO string)
  const typists = new Map(); // user -> timer that ends their indicator

  function render() {
    bar.hidden = !on;
    list.replaceChildren();
    if (!big) {
      for (const [user] of users) {
        const li = document.createElement("li");
        li.dataset.user = user;
        li.textContent = user === me ? user + " (me)" : user;
        if (user === me) li.className = "me";
        list.appendChild(li);
      }
    }
    countEl.textContent = count === 1 ? "1 person here" : count + " people here";
  }

  function quietLine(text) {
    if (!log) return;
    const stick = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    const li = document.createElement("li");
    li.className = "system presence-line";
    li.textContent = text;
    log.appendChild(li);
    if (stick) log.scrollTop = log.scrollHeight;
  }

  function renderTyping() {
    const names = [...typists.keys()];
    let text = "";
    if (names.length === 1) text = names[0] + " is typing…";
    else if (names.length === 2) text = names[0] + " and " + names[1] + " are typing…";
    else if (names.length > 2) text = names.length + " people are typing…";
    typingEl.textContent = text;
  }

  function stopTyping(user) {
    const t = typists.get(user);
    if (t === undefined) return;
    clearTimeout(t);
    typists.delete(user);
    renderTyping();
  }

  function startTyping(user, ms) {
    if (user === me) return;
    clearTimeout(typists.get(user));
    // The server also says when it stops; this timer is the fallback.
    typists.set(user, setTimeout(function () { stopTyping(user); }, (ms || 6000) + 1000));
    renderTyping();
  }

  window.addEventListener("chatd:frame", function (e) {
    const data = e.detail || {};
    switch (data.type) {
      case "hello":
        me = data.user; on = !!data.presence; ready = false;
        users.clear(); count = 0; big = false;
        for (const u of [...typists.keys()]) stopTyping(u);
        render();
        break;
      case "presence":
        users.clear();
        for (const u of data.users || []) users.set(String(u.user), String(u.since));
        count = data.count || users.size;
        big = !!data.truncated;
        ready = true;
        render();
        break;
      case "presence_count":
        count = data.count; big = true; render();
        break;
      case "join":
        if (users.has(data.user)) break;
        users.set(String(data.user), String(data.since || ""));
        count++;
        render();
        if (ready && data.user !== me) quietLine(data.user + " joined");
        break;
      case "leave":
        if (!users.has(data.user)) break;
        users.delete(data.user);
        count = Math.max(0, count - 1);
        render();
        stopTyping(data.user);
        quietLine(data.user + " left");
        break;
      case "typing": startTyping(String(data.user), data.expires_in); break;
      case "typing_stop": stopTyping(data.user); break;
      case "chat_message": stopTyping(data.user); break;
    }
  });

  // Tell the room this person is typing: at most once every 2 s while
  // keys are pressed (the server relays one in TYPING_TIMEOUT/3 anyway).
  let lastSent = 0;
  if (input) {
    input.addEventListener("input", function () {
      if (!on || input.value.trim() === "" || typeof window.chatdSend !== "function") return;
      const now = Date.now();
      if (now - lastSent < 2000) return;
      if (window.chatdSend({ type: "typing" })) lastSent = now;
    });
    const form = document.getElementById("send-form");
    if (form) form.addEventListener("submit", function () { lastSent = 0; });
  }
})();
