// Every page: the scripts' strings in the page's language, and for a
// signed-in user the unread badge in the header.
//
// window.chatdI18n.t(key, {name: value}) returns the translation of key
// from the page's <script type="application/json" id="i18n"> block (the
// server writes it in the request's language; the Content-Security-Policy
// allows no inline script) with {name} placeholders filled in;
// tn(n, one, other) picks the form for n with Intl.PluralRules. locale is
// the browser's own variant of the page's language (en-GB, pt-BR), for
// dates, times and numbers.
//
// The badge counts unread messages in the user's course rooms and private
// conversations (from stored history, GET /api/unread), less the room the
// page shows, if any; it is refreshed
// every data-unread-poll milliseconds (UNREAD_POLL_INTERVAL), at once when
// the page becomes visible again, and by room.js after it reports what it
// has shown. The room list (/chat/) updates its per-room badges from the
// same answer.
(function () {
  "use strict";
  let strings = {};
  try {
    strings = JSON.parse(document.getElementById("i18n").textContent) || {};
  } catch (_) { /* no block: English keys */ }
  const lang = document.documentElement.lang || "en";
  const prefs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || lang];
  const locale = prefs.find(function (l) { return l && l.toLowerCase().split("-")[0] === lang; }) || lang;

  function t(key, vars) {
    let s = Object.prototype.hasOwnProperty.call(strings, key) ? strings[key] : key;
    if (vars) {
      s = s.replace(/\{(\w+)\}/g, function (m, k) { return Object.prototype.hasOwnProperty.call(vars, k) ? String(vars[k]) : m; });
    }
    return s;
  }

  function tn(n, one, other, vars) {
    let form = "other";
    try { form = new Intl.PluralRules(lang).select(n); } catch (_) { /* old browser */ }
    return t(form === "one" ? one : other, Object.assign({ n: n.toLocaleString(locale) }, vars || {}));
  }

  window.chatdI18n = { t: t, tn: tn, lang: lang, locale: locale };

  const url = document.body.dataset.unread;
  if (!url) return;
  const every = Math.max(250, Number(document.body.dataset.unreadPoll) || 20000);
  const MAX = 100; // chat.MaxUnread: counts stop there

  // show puts n on a badge: the number (99+ at the cap) for the eye and the
  // words for screen readers; hidden at 0.
  function show(badge, n) {
    if (!badge) return;
    badge.hidden = !n;
    badge.textContent = "";
    badge.dataset.count = String(n);
    if (!n) return;
    const num = document.createElement("span");
    num.setAttribute("aria-hidden", "true");
    num.textContent = n >= MAX ? (MAX - 1).toLocaleString(locale) + "+" : n.toLocaleString(locale);
    const words = document.createElement("span");
    words.className = "sr-only";
    words.textContent = tn(n, "{n} unread message", "{n} unread messages");
    badge.title = words.textContent;
    badge.appendChild(num);
    badge.appendChild(words);
  }

  let timer = null;
  let inflight = false;
  let polls = 0;
  function poll() {
    clearTimeout(timer);
    timer = null;
    if (inflight) return;
    inflight = true;
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (!body) return;
        const rooms = body.rooms || {};
        // The room this page shows is being read: it does not count.
        const here = document.getElementById("chat");
        let total = body.total || 0;
        if (here && !here.dataset.public && rooms[here.dataset.room]) total -= rooms[here.dataset.room];
        show(document.getElementById("nav-unread"), Math.max(0, total));
        document.querySelectorAll("[data-room-key]").forEach(function (li) {
          show(li.querySelector(".badge.unread"), rooms[li.dataset.roomKey] || 0);
        });
      })
      .catch(function () { /* offline: the next poll tries again */ })
      .finally(function () {
        inflight = false;
        polls++;
        document.body.dataset.unreadPolls = String(polls); // for tests: answers seen
        // A hidden page asks less often.
        timer = setTimeout(poll, document.visibilityState === "hidden" ? every * 4 : every);
      });
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") poll();
  });
  window.chatdUnread = { refresh: poll };
  poll();
})();
