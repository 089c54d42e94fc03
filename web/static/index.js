// Room picker: validates the name as the server does and goes to the room.
(function () {
  "use strict";
  const form = document.getElementById("room-form");
  const input = document.getElementById("room-name-input");
  const error = document.getElementById("room-error");
  const valid = /^[\p{L}\p{N}_.-]{1,100}$/u;
  input.focus();
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    const name = input.value.trim();
    if (!valid.test(name) || /^\.+$/.test(name) || [...name].length > 100) {
      error.textContent = "A room name is 1 to 100 characters: letters, digits, '_', '-' or '.' (not only dots).";
      input.focus();
      return;
    }
    window.location.pathname = "/chat/" + encodeURIComponent(name) + "/";
  });
  input.addEventListener("input", function () { error.textContent = ""; });
})();
