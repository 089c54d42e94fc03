// Room picker: validates the name as the server does and goes to the
// room. For a guest it also lists the public rooms this browser was in
// recently (room.js keeps them in localStorage; a signed-in user's list
// comes from the server).
(function () {
  "use strict";
  const t = window.chatdI18n ? window.chatdI18n.t : function (k) { return k; };
  const form = document.getElementById("room-form");
  const input = document.getElementById("room-name-input");
  const error = document.getElementById("room-error");
  const valid = /^[\p{L}\p{N}_.-]{1,100}$/u;
  input.focus();
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    const name = input.value.trim();
    if (!valid.test(name) || /^\.+$/.test(name) || [...name].length > 100) {
      error.textContent = t("A room name is 1 to 100 characters: letters, digits, '_', '-' or '.' (not only dots).");
      input.focus();
      return;
    }
    window.location.pathname = "/chat/" + encodeURIComponent(name) + "/";
  });
  input.addEventListener("input", function () { error.textContent = ""; });

  const list = document.getElementById("recent-list");
  if (!list) return;
  let recent = [];
  try {
    recent = JSON.parse(localStorage.getItem("chatd:recent") || "[]");
  } catch (_) { /* storage off */ }
  if (!Array.isArray(recent)) recent = [];
  for (const r of recent) {
    if (!r || typeof r.path !== "string" || !/^\/chat\/[^/]+\/$/.test(r.path) || typeof r.title !== "string") continue;
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = r.path;
    const b = document.createElement("bdi");
    b.textContent = r.title;
    a.appendChild(b);
    li.appendChild(a);
    list.appendChild(li);
  }
  const empty = document.getElementById("recent-empty");
  if (list.children.length > 0) {
    if (empty) empty.hidden = true;
  } else {
    list.hidden = true;
  }
})();
