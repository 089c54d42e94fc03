// Room page client. It speaks the tutorial protocol ({"message": ...} in,
// chat_message frames out) and opts into chatd.v1 to learn its own name
// (the hello frame), so it can mark its own messages "Me".
// Chat text is always inserted with textContent, never as HTML.
(function () {
  "use strict";
  const root = document.getElementById("chat");
  const log = document.getElementById("chat-log");
  const input = document.getElementById("chat-message-input");
  const form = document.getElementById("send-form");
  const statusEl = document.getElementById("status");
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + root.dataset.socket;

  let socket = null;
  let me = null;
  let attempt = 0;
  let timer = null;
  // Close codes after which reconnecting cannot help.
  const final = { 1003: true, 1007: true, 1008: true, 1009: true, 4401: true, 4403: true };

  function setStatus(cls, text) {
    statusEl.className = "status " + cls;
    statusEl.textContent = text;
  }

  function atBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  }

  function addLine(cls, parts) {
    const stick = atBottom();
    const li = document.createElement("li");
    li.className = cls;
    for (const [tag, cl, text] of parts) {
      const el = document.createElement(tag);
      if (cl) el.className = cl;
      el.textContent = text;
      li.appendChild(el);
    }
    log.appendChild(li);
    if (stick || cls.includes("mine")) log.scrollTop = log.scrollHeight;
  }

  function system(text) { addLine("system", [["span", "text", text]]); }

  function showMessage(data) {
    const mine = me !== null && data.user === me;
    const when = data.datetime ? new Date(data.datetime) : new Date();
    const time = isNaN(when) ? "" : when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    addLine(mine ? "msg mine" : "msg", [
      ["span", "author", mine ? "Me" : (data.user || "someone")],
      ["time", "when", time],
      ["span", "text", String(data.message)],
    ]);
  }

  function connect() {
    timer = null;
    setStatus("connecting", attempt ? "reconnecting…" : "connecting…");
    socket = new WebSocket(url, ["chatd.v1"]);
    socket.onopen = function () {
      attempt = 0;
      setStatus("online", "connected");
    };
    socket.onmessage = function (e) {
      let data;
      try { data = JSON.parse(e.data); } catch (_) { return; }
      // presence.js hook (issue 10): every frame, for other scripts.
      window.dispatchEvent(new CustomEvent("chatd:frame", { detail: data }));
      switch (data.type) {
        case "hello": me = data.user; break;
        case "error": system("⚠ " + (data.detail || data.message)); break;
        case "chat_message": showMessage(data); break;
        default: if (typeof data.message === "string") showMessage(data);
      }
    };
    socket.onclose = function (e) {
      socket = null;
      if (final[e.code]) {
        setStatus("offline", "disconnected");
        system("Disconnected: " + (e.reason || "code " + e.code) + ". Reload the page to try again.");
        return;
      }
      // Exponential backoff with full jitter: 0.5 s, 1 s, 2 s … up to 15 s.
      const cap = Math.min(15000, 500 * Math.pow(2, attempt));
      const delay = Math.round(Math.random() * cap) + 250;
      attempt++;
      setStatus("offline", "offline, retrying in " + Math.ceil(delay / 1000) + " s");
      timer = setTimeout(connect, delay);
    };
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    const text = input.value;
    if (text.trim() === "") { input.focus(); return; }
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      system("Not connected; your message was not sent. It is still in the box.");
      return;
    }
    socket.send(JSON.stringify({ message: text }));
    input.value = "";
    input.focus();
  });

  // presence.js hook (issue 10): send a frame if connected; reports whether it went.
  window.chatdSend = function (obj) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(obj));
    return true;
  };

  window.addEventListener("online", function () {
    if (timer) { clearTimeout(timer); connect(); }
  });

  input.focus();
  connect();
})();
