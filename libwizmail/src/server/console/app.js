// The console's core (docs/console.md, "Pages"): the API client with the
// CSRF token, the language (Accept-Language / the switch), the hash router,
// the login page and the account holder's pages. admin.js adds the
// administrator's pages through W.page().
//
// Rule: every value that comes from the server (or from a user) reaches the
// page through textContent, element properties or createElement — never
// parsed as HTML (tests/server/console_assets_test.cpp refuses the APIs that
// would) — so a name like <img src=x onerror=...> stays text.
"use strict";

const W = (() => {
  const state = { me: null, lang: "en", dict: {}, en: {}, pages: {}, order: [], timers: [], route: "" };
  const LANGS = ["en", "ja"];

  // ---- text -------------------------------------------------------------
  function t(key, ...args) {
    let s = state.dict[key] ?? state.en[key] ?? key;
    args.forEach((a, i) => { s = s.split("{" + i + "}").join(String(a)); });
    return s;
  }

  // el("td", {className: "num"}, "text", child...) — strings become text nodes.
  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null) continue;
      if (k === "on") for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
      else if (k === "dataset") Object.assign(e.dataset, v);
      else if (k === "attrs") for (const [a, av] of Object.entries(v)) e.setAttribute(a, av);
      else e[k] = v;
    }
    for (const kid of kids.flat()) {
      if (kid === undefined || kid === null || kid === false) continue;
      e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return e;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

  function bytes(n) {
    if (n === null || n === undefined || n < 0) return "—";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0, v = n;
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return (i ? v.toFixed(1) : String(v)) + " " + u[i];
  }

  function when(unix) {
    if (!unix) return "—";
    return new Date(unix * 1000).toLocaleString(state.lang === "ja" ? "ja-JP" : "en-GB");
  }

  function age(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds < 120) return t("age.seconds", seconds);
    if (seconds < 7200) return t("age.minutes", Math.floor(seconds / 60));
    if (seconds < 172800) return t("age.hours", Math.floor(seconds / 3600));
    return t("age.days", Math.floor(seconds / 86400));
  }

  // ---- API --------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(method, path, body) {
    const opts = { method, headers: {}, credentials: "same-origin", cache: "no-store" };
    if (method !== "GET" && state.me) opts.headers["X-CSRF-Token"] = state.me.csrf_token;
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) {
      const msg = data && typeof data.error === "string" ? data.error : r.status + " " + r.statusText;
      // The session is gone (expired, logged out elsewhere, account deleted).
      if (r.status === 401 && msg === "not logged in" && path !== "/api/login") {
        state.me = null;
        showLogin();
      }
      throw new ApiError(r.status, msg);
    }
    return data;
  }

  // ---- notices ----------------------------------------------------------
  function notice(node, kind, text) {
    node.className = "notice " + kind;
    node.textContent = text;
  }
  function noticeBox() { return el("div", { className: "notice", attrs: { role: "status" } }); }
  function failed(node, e) { notice(node, "error", t("error.prefix") + " " + e.message); }

  // A delete button that asks once more (no confirm(): no native dialogs).
  function twoStep(label, onConfirm) {
    const b = el("button", { type: "button", className: "danger" }, label);
    let armed = false;
    b.addEventListener("click", async () => {
      if (!armed) {
        armed = true;
        b.classList.add("armed");
        b.textContent = t("action.confirm");
        setTimeout(() => { armed = false; b.classList.remove("armed"); b.textContent = label; }, 4000);
        return;
      }
      await onConfirm();
    });
    return b;
  }

  // ---- language ---------------------------------------------------------
  function chooseLang() {
    const saved = localStorage.getItem("wizmail.lang");
    if (LANGS.includes(saved)) return saved;
    for (const l of navigator.languages || [navigator.language || "en"]) {
      const base = String(l).toLowerCase().split("-")[0];
      if (LANGS.includes(base)) return base;
    }
    return "en";
  }

  async function loadDict(lang) {
    const r = await fetch("/assets/i18n/" + lang + ".json");
    return r.ok ? r.json() : {};
  }

  async function setLang(lang, remember) {
    if (!LANGS.includes(lang)) lang = "en";
    if (!Object.keys(state.en).length) state.en = await loadDict("en");
    state.dict = lang === "en" ? state.en : await loadDict(lang);
    state.lang = lang;
    document.documentElement.lang = lang;
    if (remember) localStorage.setItem("wizmail.lang", lang);
    document.getElementById("lang").value = lang;
    document.getElementById("lang-label").textContent = t("lang.label");
    document.getElementById("logout").textContent = t("action.logout");
    document.title = t("app.title");
  }

  // ---- pages and routing -----------------------------------------------
  // page(name, {admin, group, label, render(main, arg)})
  function page(name, def) {
    state.pages[name] = def;
    state.order.push(name);
  }

  function stopTimers() {
    state.timers.forEach(clearInterval);
    state.timers = [];
  }
  function every(ms, fn) { state.timers.push(setInterval(fn, ms)); }

  function homeRoute() { return state.me && state.me.admin ? "dashboard" : "mailbox"; }

  function renderNav() {
    const nav = clear(document.getElementById("nav"));
    nav.hidden = false;
    for (const group of ["admin", "self"]) {
      const names = state.order.filter((n) => state.pages[n].group === group && (!state.pages[n].admin || state.me.admin));
      if (names.length) nav.append(el("div", { className: "group" }, t("nav.group." + group)));
      for (const name of names) {
        const p = state.pages[name];
        nav.append(el("a", { href: "#/" + name, id: "nav-" + name, className: name === state.route ? "current" : "" },
          t(p.label)));
      }
    }
    document.getElementById("whoami").textContent =
      t(state.me.admin ? "whoami.admin" : "whoami.user", state.me.account);
    document.getElementById("logout").hidden = false;
  }

  async function route() {
    stopTimers();
    if (!state.me) return showLogin();
    const parts = location.hash.replace(/^#\/?/, "").split("/");
    let name = parts[0];
    const arg = parts.slice(1).map(decodeURIComponent).join("/");
    const p = state.pages[name];
    const main = clear(document.getElementById("main"));
    if (!p) {
      name = homeRoute();
      history.replaceState(null, "", "#/" + name);
      return route();
    }
    state.route = name;
    renderNav();
    if (p.admin && !state.me.admin) {
      main.append(el("h1", {}, t("error.forbidden.title")),
        el("p", { className: "notice error", id: "forbidden" }, t("error.forbidden")));
      return;
    }
    main.append(el("h1", { id: "page-title" }, t(p.label)));
    try {
      await p.render(main, arg);
    } catch (e) {
      const n = noticeBox();
      main.append(n);
      failed(n, e);
    }
  }

  // ---- login / logout ---------------------------------------------------
  function showLogin() {
    stopTimers();
    document.getElementById("nav").hidden = true;
    document.getElementById("logout").hidden = true;
    document.getElementById("whoami").textContent = "";
    const main = clear(document.getElementById("main"));
    const msg = noticeBox();
    const account = el("input", { type: "text", id: "login-account", name: "account", autocomplete: "username", required: true });
    const password = el("input", { type: "password", id: "login-password", name: "password", autocomplete: "current-password", required: true });
    const form = el("form", { className: "stack", id: "login-form" },
      el("label", { className: "field" }, t("login.account"), account),
      el("label", { className: "field" }, t("login.password"), password),
      el("button", { type: "submit", id: "login-submit" }, t("login.submit")));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        state.me = await api("POST", "/api/login", { account: account.value, password: password.value });
        if (!location.hash || location.hash === "#" || location.hash === "#/") location.hash = "#/" + homeRoute();
        await route();
      } catch (e) {
        notice(msg, "error", e.status === 401 ? t("login.failed") : t("error.prefix") + " " + e.message);
      }
    });
    main.append(el("div", { className: "login" }, el("h1", {}, t("login.title")), msg, form));
    account.focus();
  }

  async function logout() {
    try { await api("POST", "/api/logout"); } catch (e) { /* the session is gone either way */ }
    state.me = null;
    history.replaceState(null, "", "#/");
    showLogin();
  }

  async function start() {
    await setLang(chooseLang(), false);
    document.getElementById("lang").addEventListener("change", async (ev) => {
      await setLang(ev.target.value, true);
      if (state.me) await route(); else showLogin();
    });
    document.getElementById("logout").addEventListener("click", logout);
    window.addEventListener("hashchange", route);
    try {
      state.me = await api("GET", "/api/me");
    } catch (e) {
      state.me = null;
    }
    await route();
  }

  return { state, t, el, clear, bytes, when, age, api, notice, noticeBox, failed, twoStep, page, every, route, start };
})();

// ---- the account holder's pages (every session) ----------------------------
(() => {
  const { t, el, api, notice, noticeBox, failed, bytes } = W;

  function usage(label, used, quota, fmt, id) {
    const row = el("tr", { id });
    row.append(el("th", {}, label), el("td", { className: "num used" }, fmt(used)),
      el("td", { className: "num quota" }, quota < 0 ? t("quota.none") : fmt(quota)));
    const cell = el("td");
    if (quota > 0) {
      cell.append(el("progress", { value: Math.min(used, quota), max: quota }),
        " " + Math.round(100 * used / quota) + " %");
    }
    row.append(cell);
    return row;
  }

  W.page("mailbox", {
    group: "self", label: "page.mailbox",
    async render(main) {
      const m = await api("GET", "/api/me/mailbox");
      main.append(el("table", { id: "mailbox" },
        el("tr", {}, el("th"), el("th", { className: "num" }, t("mailbox.used")),
          el("th", { className: "num" }, t("mailbox.quota")), el("th", {}, t("mailbox.share"))),
        usage(t("mailbox.messages"), m.messages, m.quota.messages, String, "mailbox-messages"),
        usage(t("mailbox.bytes"), m.bytes, m.quota.bytes, bytes, "mailbox-bytes")));
    },
  });

  W.page("password", {
    group: "self", label: "page.password",
    async render(main) {
      const msg = noticeBox();
      const cur = el("input", { type: "password", id: "pw-current", autocomplete: "current-password", required: true });
      const pw1 = el("input", { type: "password", id: "pw-new", autocomplete: "new-password", required: true });
      const pw2 = el("input", { type: "password", id: "pw-again", autocomplete: "new-password", required: true });
      const form = el("form", { className: "stack", id: "password-form" },
        el("label", { className: "field" }, t("password.current"), cur),
        el("label", { className: "field" }, t("password.new"), pw1),
        el("label", { className: "field" }, t("password.again"), pw2),
        el("button", { type: "submit" }, t("action.save")));
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        if (pw1.value !== pw2.value) return notice(msg, "error", t("password.mismatch"));
        try {
          await api("POST", "/api/password", { password: pw1.value, current_password: cur.value });
          form.reset();
          notice(msg, "ok", t("password.changed"));
        } catch (e) {
          if (e.status === 401) notice(msg, "error", t("password.wrong_current"));
          else failed(msg, e);
        }
      });
      main.append(msg, form);
    },
  });

  W.page("forward", {
    group: "self", label: "page.forward",
    async render(main) {
      const msg = noticeBox();
      const f = await api("GET", "/api/me/forward");
      const addrs = el("textarea", { id: "forward-addresses", value: (f.addresses || []).join("\n") });
      // forward.def runs after the message is stored: a copy always stays.
      const keep = el("input", { type: "checkbox", id: "forward-keep", checked: true, disabled: true });
      const form = el("form", { className: "stack", id: "forward-form" },
        el("p", { className: "muted" }, t("forward.help")),
        f.custom ? el("p", { className: "notice error", id: "forward-custom" }, t("hook.custom")) : null,
        el("label", { className: "field" }, t("forward.addresses"), addrs),
        el("label", {}, keep, " ", t("forward.keep_copy")),
        el("button", { type: "submit" }, t("action.save")));
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const list = addrs.value.split(/[\s,]+/).filter(Boolean);
        try {
          await api("PUT", "/api/me/forward", { addresses: list, keep_copy: true });
          notice(msg, "ok", t("saved"));
        } catch (e) { failed(msg, e); }
      });
      main.append(msg, form);
    },
  });

  W.page("vacation", {
    group: "self", label: "page.vacation",
    async render(main) {
      const msg = noticeBox();
      const v = await api("GET", "/api/me/vacation");
      const on = el("input", { type: "checkbox", id: "vacation-enabled", checked: !!v.enabled });
      const subject = el("input", { type: "text", id: "vacation-subject", value: v.subject || "" });
      const text = el("textarea", { id: "vacation-text", value: v.text || "" });
      const from = el("input", { type: "date", id: "vacation-from", value: v.from || "" });
      const until = el("input", { type: "date", id: "vacation-until", value: v.until || "" });
      const form = el("form", { className: "stack", id: "vacation-form" },
        el("p", { className: "muted" }, t("vacation.help")),
        v.custom ? el("p", { className: "notice error", id: "vacation-custom" }, t("hook.custom")) : null,
        el("label", {}, on, " ", t("vacation.enabled")),
        el("label", { className: "field" }, t("vacation.subject"), subject),
        el("label", { className: "field" }, t("vacation.text"), text),
        el("div", { className: "toolbar" },
          el("label", { className: "field" }, t("vacation.from"), from),
          el("label", { className: "field" }, t("vacation.until"), until)),
        el("button", { type: "submit", id: "vacation-save" }, t("action.save")));
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        try {
          await api("PUT", "/api/me/vacation", { enabled: on.checked, subject: subject.value, text: text.value,
            from: from.value, until: until.value });
          notice(msg, "ok", t("saved"));
        } catch (e) { failed(msg, e); }
      });
      main.append(msg, form);
    },
  });
})();

document.addEventListener("DOMContentLoaded", () => { W.start(); });
