// The administrator's pages (docs/console.md, "Pages"): dashboard, accounts,
// mailing lists, queue, logs, configuration, DKIM records. Shown only to an
// administrator's session; the server refuses the API to others (403) anyway.
// Values go in with textContent / createElement only (see app.js).
"use strict";

(() => {
  const { t, el, clear, bytes, when, age, api, notice, noticeBox, failed, twoStep } = W;
  const SERIES = ["received", "delivered", "relayed", "bounced"];
  const COLORS = { received: "#1f77b4", delivered: "#2ca02c", relayed: "#ff7f0e", bounced: "#d62728" };

  function card(id, label, value) {
    return el("div", { className: "card", id },
      el("div", { className: "label" }, label), el("div", { className: "value" }, value));
  }

  function setCard(id, value) {
    const c = document.getElementById(id);
    if (c) c.querySelector(".value").textContent = value;
  }

  function head(...cols) {
    return el("thead", {}, el("tr", {}, cols.map((c) =>
      Array.isArray(c) ? el("th", { className: c[1] }, c[0]) : el("th", {}, c))));
  }

  // A table of {key, value, default, doc} rows, each editable and saved
  // with save(key, value) (account and list settings).
  function settingsTable(id, rows, save) {
    const body = el("tbody");
    for (const r of rows) {
      // value null: the file leaves the key out and the default applies;
      // saving an empty value removes the key again.
      const input = el("input", { type: "text", value: r.value ?? "", placeholder: r.default ?? "", dataset: { key: r.key } });
      const msg = el("span", { className: "row-msg" });
      const button = el("button", { type: "button" }, t("action.save"));
      button.addEventListener("click", async () => {
        // Only this save's outcome is shown (never the last one's meanwhile).
        msg.className = "row-msg";
        msg.textContent = "";
        try {
          await save(r.key, input.value);
          msg.textContent = t("saved");
        } catch (e) {
          msg.className = "row-msg error-text";
          msg.textContent = e.message;
        }
      });
      body.append(el("tr", { dataset: { key: r.key } },
        el("td", {}, el("code", {}, r.key)), el("td", {}, input, " ", button, " ", msg),
        el("td", { className: "muted" }, r.default ?? "", r.set === false ? el("div", {}, t("settings.inherited")) : null),
        el("td", { className: "doc" }, r.doc ?? "", r.allowed ? el("div", { className: "muted" }, t("config.allowed", r.allowed)) : null,
          r.file ? el("div", { className: "muted" }, r.file) : null)));
    }
    return el("table", { id }, head(t("config.key"), t("config.value"), t("config.default"), t("config.doc")), body);
  }

  // ---- dashboard -------------------------------------------------------
  function makeChart(canvas, type, labels, data) {
    if (!window.Chart) return null;
    return new window.Chart(canvas, {
      type,
      data: {
        labels,
        datasets: SERIES.map((s) => ({ label: t("series." + s), data: data[s] || [], borderColor: COLORS[s],
          backgroundColor: COLORS[s], tension: 0.25, pointRadius: 0 })),
      },
      options: { animation: false, responsive: true, maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
  }

  W.page("dashboard", {
    admin: true, group: "admin", label: "page.dashboard",
    async render(main) {
      const msg = noticeBox();
      const cards = el("div", { className: "cards" });
      const sessions = el("tbody");
      const line = el("canvas", { id: "chart-traffic" });
      const bar = el("canvas", { id: "chart-totals" });
      const charts = el("div", { className: "charts" },
        el("div", { className: "chart-box" }, line), el("div", { className: "chart-box" }, bar));
      main.append(msg, el("p", { className: "muted", id: "dashboard-meta" }), cards,
        el("h2", {}, t("dashboard.traffic")), charts,
        el("h2", {}, t("dashboard.sessions")),
        el("table", { id: "sessions", className: "narrow" }, head(t("dashboard.protocol"), [t("dashboard.open"), "num"]), sessions));
      if (!window.Chart) main.append(el("p", { className: "notice error", id: "no-charts" }, t("dashboard.no_charts")));
      let lineChart = null, barChart = null;

      async function refresh() {
        let d;
        try { d = await api("GET", "/api/dashboard"); } catch (e) { return failed(msg, e); }
        msg.textContent = "";
        msg.className = "notice";
        document.getElementById("dashboard-meta").textContent =
          t("dashboard.meta", d.version, when(d.started), when(d.now));
        const totals = {};
        for (const s of SERIES) totals[s] = (d.series[s] || []).reduce((a, b) => a + b, 0);
        const used = d.disk.total_bytes - d.disk.free_bytes;
        const values = [
          ["card-queue", t("dashboard.queue_length"), String(d.queue.length)],
          ["card-oldest", t("dashboard.queue_oldest"), age(d.queue.oldest_age_s)],
          ...SERIES.map((s) => ["card-" + s, t("dashboard.hour." + s), String(totals[s])]),
          ["card-disk", t("dashboard.disk", d.disk.path), bytes(used) + " / " + bytes(d.disk.total_bytes)],
        ];
        if (!cards.firstChild) for (const [id, label, v] of values) cards.append(card(id, label, v));
        else for (const [id, , v] of values) setCard(id, v);
        clear(sessions);
        for (const [proto, n] of Object.entries(d.sessions))
          sessions.append(el("tr", { dataset: { protocol: proto } }, el("td", {}, proto), el("td", { className: "num" }, String(n))));
        const labels = d.series.minute_start.map((s) => {
          const dt = new Date(s * 1000);
          return String(dt.getHours()).padStart(2, "0") + ":" + String(dt.getMinutes()).padStart(2, "0");
        });
        if (!lineChart) {
          lineChart = makeChart(line, "line", labels, d.series);
          barChart = makeChart(bar, "bar", [t("dashboard.last_hour")], Object.fromEntries(SERIES.map((s) => [s, [totals[s]]])));
        } else {
          lineChart.data.labels = labels;
          SERIES.forEach((s, i) => { lineChart.data.datasets[i].data = d.series[s]; });
          SERIES.forEach((s, i) => { barChart.data.datasets[i].data = [totals[s]]; });
          lineChart.update("none");
          barChart.update("none");
        }
      }
      await refresh();
      W.every(5000, refresh);
    },
  });

  // ---- accounts --------------------------------------------------------
  W.page("accounts", {
    admin: true, group: "admin", label: "page.accounts",
    async render(main) {
      const msg = noticeBox();
      const q = el("input", { type: "search", id: "accounts-search", placeholder: t("accounts.search") });
      const sort = el("select", { id: "accounts-sort" },
        ["account", "messages", "bytes", "sent", "received"].map((k) => el("option", { value: k }, t("accounts.sort." + k))));
      const order = el("select", { id: "accounts-order" },
        el("option", { value: "asc" }, t("order.asc")), el("option", { value: "desc" }, t("order.desc")));
      const body = el("tbody");
      const panel = el("div", { id: "account-panel" });
      const name = el("input", { type: "text", id: "new-account", required: true, autocomplete: "off" });
      const pw = el("input", { type: "password", id: "new-password", required: true, autocomplete: "new-password" });
      const create = el("form", { className: "inline", id: "create-account" },
        el("label", { className: "field" }, t("accounts.name"), name),
        el("label", { className: "field" }, t("accounts.password"), pw),
        el("button", { type: "submit" }, t("accounts.create")));
      const summary = el("p", { className: "muted", id: "accounts-summary" });
      main.append(msg, create, el("div", { className: "toolbar" }, q, sort, order), summary,
        el("table", { id: "accounts" }, head(t("accounts.name"), t("accounts.kind"), [t("accounts.messages"), "num"],
          [t("accounts.bytes"), "num"], t("accounts.quota_use"), [t("accounts.sent"), "num"],
          [t("accounts.received"), "num"], t("accounts.actions")), body), panel);

      async function load() {
        const params = new URLSearchParams({ q: q.value, sort: sort.value, order: order.value });
        const d = await api("GET", "/api/accounts?" + params.toString());
        clear(body);
        summary.textContent = t("accounts.summary", d.accounts.length, d.queue_length);
        for (const a of d.accounts) {
          const quota = d.quota.bytes > 0 ? Math.round(100 * a.bytes / d.quota.bytes) + " %" : t("quota.none");
          const actions = el("td");
          if (a.kind === "account") {
            actions.append(el("button", { type: "button", className: "secondary", on: { click: () => showAccount(a.account) } },
              t("accounts.settings")));
            actions.append(twoStep(t("action.delete"), async () => {
              try {
                await api("DELETE", "/api/accounts/" + encodeURIComponent(a.account));
                notice(msg, "ok", t("accounts.deleted", a.account));
                await load();
              } catch (e) { failed(msg, e); }
            }));
          }
          body.append(el("tr", { dataset: { account: a.account } },
            el("td", { className: "name" }, a.account),
            el("td", {}, a.kind === "mailing_list" ? t("accounts.kind.list") : a.error ? a.error : t("accounts.kind.account")),
            el("td", { className: "num" }, String(a.messages ?? "")), el("td", { className: "num" }, bytes(a.bytes)),
            el("td", {}, quota), el("td", { className: "num" }, String(a.sent ?? "")),
            el("td", { className: "num" }, String(a.received ?? "")), actions));
        }
      }

      async function showAccount(account) {
        clear(panel);
        const box = el("div", { className: "panel" }, el("h2", {}, t("accounts.panel", account)));
        panel.append(box);
        const pmsg = noticeBox();
        const npw = el("input", { type: "password", id: "set-password", autocomplete: "new-password", required: true });
        const pform = el("form", { className: "inline", id: "set-password-form" },
          el("label", { className: "field" }, t("accounts.new_password"), npw),
          el("button", { type: "submit" }, t("accounts.set_password")));
        pform.addEventListener("submit", async (ev) => {
          ev.preventDefault();
          try {
            await api("POST", "/api/password", { account, password: npw.value });
            pform.reset();
            notice(pmsg, "ok", t("password.changed"));
          } catch (e) { failed(pmsg, e); }
        });
        box.append(pmsg, pform);
        try {
          const s = await api("GET", "/api/accounts/" + encodeURIComponent(account) + "/settings");
          box.append(el("h2", {}, t("accounts.settings")),
            settingsTable("account-settings", s.settings, (key, value) =>
              api("PUT", "/api/accounts/" + encodeURIComponent(account) + "/settings", { key, value })));
        } catch (e) { failed(pmsg, e); }
      }

      create.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        try {
          const r = await api("POST", "/api/accounts", { account: name.value, password: pw.value });
          create.reset();
          notice(msg, "ok", t("accounts.created", r.created));
          await load();
        } catch (e) { failed(msg, e); }
      });
      let timer = null;
      q.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => load().catch((e) => failed(msg, e)), 250); });
      sort.addEventListener("change", () => load().catch((e) => failed(msg, e)));
      order.addEventListener("change", () => load().catch((e) => failed(msg, e)));
      await load();
    },
  });

  // ---- mailing lists ---------------------------------------------------
  W.page("lists", {
    admin: true, group: "admin", label: "page.lists",
    async render(main, arg) {
      const msg = noticeBox();
      const d = await api("GET", "/api/lists");
      const body = el("tbody");
      for (const l of d.lists) {
        body.append(el("tr", { dataset: { list: l.name } },
          el("td", {}, el("a", { href: "#/lists/" + encodeURIComponent(l.name) }, l.name)),
          el("td", { className: "num" }, String(l.members))));
      }
      main.append(msg, el("table", { id: "lists" }, head(t("lists.name"), [t("lists.members"), "num"]), body));
      if (!d.lists.length) main.append(el("p", { className: "muted" }, t("lists.none")));
      if (!arg) return;
      const l = await api("GET", "/api/lists/" + encodeURIComponent(arg));
      const members = el("textarea", { id: "list-members", value: l.members.join("\n") });
      const form = el("form", { className: "stack", id: "list-members-form" },
        el("label", { className: "field" }, t("lists.members_help"), members),
        el("button", { type: "submit" }, t("action.save")));
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        try {
          await api("PUT", "/api/lists/" + encodeURIComponent(l.name) + "/members",
            { members: members.value.split(/\s+/).filter(Boolean) });
          notice(msg, "ok", t("saved"));
        } catch (e) { failed(msg, e); }
      });
      const memberList = el("ul", { id: "list-member-items" }, l.members.map((m) => el("li", {}, m)));
      main.append(el("div", { className: "panel" }, el("h2", { id: "list-title" }, t("lists.panel", l.name)), memberList, form,
        el("h2", {}, t("lists.settings")),
        settingsTable("list-settings", l.settings || [], (key, value) =>
          api("PUT", "/api/lists/" + encodeURIComponent(l.name) + "/settings", { key, value }))));
    },
  });

  // ---- queue -----------------------------------------------------------
  W.page("queue", {
    admin: true, group: "admin", label: "page.queue",
    async render(main) {
      const msg = noticeBox();
      const body = el("tbody");
      const headers = el("div", { id: "queue-headers" });
      const flush = el("button", { type: "button", id: "queue-flush" }, t("queue.flush"));
      const reload = el("button", { type: "button", className: "secondary", id: "queue-reload" }, t("action.reload"));
      main.append(msg, el("div", { className: "toolbar" }, flush, reload),
        el("table", { id: "queue" }, head(t("queue.id"), t("queue.from"), t("queue.recipients"), [t("queue.size"), "num"],
          [t("queue.attempts"), "num"], t("queue.created"), t("queue.next"), t("queue.last_error"), t("accounts.actions")), body),
        headers);

      async function load() {
        const d = await api("GET", "/api/queue");
        clear(body);
        for (const q of d.entries) {
          const rcpts = el("ul", { className: "rcpts" }, (q.recipients || []).map((r) =>
            el("li", {}, r.address, " ", el("span", { className: "muted" }, "(" + r.status + ")"))));
          const view = el("button", { type: "button", className: "secondary" }, t("queue.headers"));
          view.addEventListener("click", async () => {
            try {
              const e = await api("GET", "/api/queue/" + encodeURIComponent(q.id));
              clear(headers).append(el("h2", {}, t("queue.headers_of", q.id)), el("pre", { id: "queue-header-text" }, e.headers));
            } catch (e) { failed(msg, e); }
          });
          const del = twoStep(t("action.delete"), async () => {
            try {
              await api("DELETE", "/api/queue/" + encodeURIComponent(q.id));
              notice(msg, "ok", t("queue.deleted", q.id));
              await load();
            } catch (e) { failed(msg, e); }
          });
          body.append(el("tr", { dataset: { id: q.id } }, el("td", {}, el("code", {}, q.id), q.state ? el("div", { className: "muted" }, q.state) : null), el("td", {}, q.from || "<>"),
            el("td", {}, rcpts), el("td", { className: "num" }, bytes(q.size)), el("td", { className: "num" }, String(q.attempts)),
            el("td", {}, when(q.created)), el("td", {}, when(q.next_attempt)), el("td", { className: "last-error" }, q.last_error || ""),
            el("td", {}, view, del)));
        }
        if (!d.entries.length) body.append(el("tr", {}, el("td", { colSpan: 9, className: "muted" }, t("queue.empty"))));
      }
      flush.addEventListener("click", async () => {
        try {
          await api("POST", "/api/queue/flush");
          notice(msg, "ok", t("queue.flushed"));
          await load();
        } catch (e) { failed(msg, e); }
      });
      reload.addEventListener("click", () => load().catch((e) => failed(msg, e)));
      await load();
    },
  });

  // ---- logs ------------------------------------------------------------
  W.page("logs", {
    admin: true, group: "admin", label: "page.logs",
    async render(main, arg) {
      const msg = noticeBox();
      const file = el("select", { id: "log-file" }, ["smtp", "pop", "error"].map((f) => el("option", { value: f }, t("logs.file." + f))));
      const lines = el("input", { type: "number", id: "log-lines", min: 1, max: 1000, value: 200 });
      const q = el("input", { type: "search", id: "log-search", placeholder: t("logs.search") });
      const out = el("div", { className: "log", id: "log-lines-out" });
      const tail = el("form", { className: "inline", id: "log-form" },
        el("label", { className: "field" }, t("logs.file"), file), el("label", { className: "field" }, t("logs.lines"), lines),
        el("label", { className: "field" }, t("logs.search"), q), el("button", { type: "submit" }, t("logs.show")));
      const sid = el("input", { type: "text", id: "log-session", placeholder: t("logs.session_id"), value: arg || "" });
      const follow = el("form", { className: "inline", id: "log-session-form" },
        el("label", { className: "field" }, t("logs.session_id"), sid), el("button", { type: "submit" }, t("logs.follow")));
      main.append(msg, tail, follow, out);

      async function showTail() {
        const params = new URLSearchParams({ file: file.value, lines: lines.value, q: q.value });
        const d = await api("GET", "/api/logs?" + params.toString());
        clear(out);
        for (const line of d.lines) out.append(logLine(line));
        if (!d.lines.length) out.append(el("div", { className: "muted" }, t("logs.none")));
      }
      // "DATE TIME SESSIONID PEER ...": the session id links to that
      // session followed across the files (the href made of hex digits only).
      function logLine(line) {
        const m = /^(\S+ \S+ )([0-9a-f]{6,32})( .*)$/.exec(line);
        if (!m) return el("div", {}, line);
        return el("div", {}, m[1], el("a", { href: "#/logs/" + m[2], className: "sid", title: t("logs.follow") }, m[2]), m[3]);
      }
      async function showSession() {
        const d = await api("GET", "/api/logs/session/" + encodeURIComponent(sid.value.trim()));
        clear(out);
        for (const l of d.lines) out.append(el("div", {}, el("span", { className: "file" }, l.file), l.line));
        if (!d.lines.length) out.append(el("div", { className: "muted" }, t("logs.none")));
      }
      tail.addEventListener("submit", (ev) => { ev.preventDefault(); showTail().catch((e) => failed(msg, e)); });
      follow.addEventListener("submit", (ev) => { ev.preventDefault(); showSession().catch((e) => failed(msg, e)); });
      await (arg ? showSession() : showTail());
    },
  });

  // ---- configuration ---------------------------------------------------
  W.page("config", {
    admin: true, group: "admin", label: "page.config",
    async render(main) {
      const msg = noticeBox();
      const filter = el("input", { type: "search", id: "config-filter", placeholder: t("config.filter") });
      const warnings = el("ul", { className: "warn", id: "config-warnings" });
      const body = el("tbody");
      main.append(msg, el("h2", {}, t("config.check")), warnings, el("div", { className: "toolbar" }, filter),
        el("table", { id: "config" }, head(t("config.key"), t("config.file"), t("config.value"), t("config.default"),
          t("config.type"), t("config.doc")), body));

      async function loadWarnings() {
        const w = await api("GET", "/api/config/check");
        clear(warnings);
        for (const line of w.errors || []) warnings.append(el("li", { className: "error-text" }, line));
        for (const line of w.warnings) warnings.append(el("li", {}, line));
        if (!w.warnings.length && !(w.errors || []).length) warnings.append(el("li", { className: "muted" }, t("config.no_warnings")));
      }
      const c = await api("GET", "/api/config");
      for (const k of c.keys) {
        const input = el("input", { type: "text", value: k.value ?? "", dataset: { key: k.key } });
        const status = el("div", { className: "row-msg" });
        const save = el("button", { type: "button" }, t("config.apply"));
        save.addEventListener("click", async () => {
          status.className = "row-msg";
          status.textContent = "";
          try {
            const r = await api("PUT", "/api/config", { key: k.key, value: input.value });
            // The value now in force (an emptied key takes its default).
            const now = (await api("GET", "/api/config")).keys.find((x) => x.key === k.key);
            input.value = now ? now.value ?? "" : r.value;
            status.textContent = r.reloaded ? t("config.reloaded") : t("saved");
            notice(msg, "ok", t("config.applied", k.key));
            await loadWarnings().catch(() => {});
          } catch (e) {
            status.className = "row-msg error-text";
            status.textContent = e.message;
            failed(msg, e);
          }
        });
        body.append(el("tr", { dataset: { key: k.key } }, el("td", {}, el("code", {}, k.key)), el("td", { className: "muted" }, k.file),
          el("td", {}, input, " ", save, status), el("td", { className: "muted" }, k.default ?? ""),
          el("td", { className: "muted" }, k.type ?? ""), el("td", { className: "doc" }, k.doc ?? "")));
      }
      filter.addEventListener("input", () => {
        const f = filter.value.toLowerCase();
        for (const row of body.rows) row.hidden = !!f && !row.dataset.key.toLowerCase().includes(f);
      });
      await loadWarnings().catch((e) => failed(msg, e));
    },
  });

  // ---- DKIM ------------------------------------------------------------
  W.page("dkim", {
    admin: true, group: "admin", label: "page.dkim",
    async render(main) {
      const d = await api("GET", "/api/dkim");
      main.append(el("p", { className: "muted" }, t("dkim.help")));
      if (!d.records.length) {
        main.append(el("p", { className: "notice ok", id: "dkim-none" }, t("dkim.none")));
        return;
      }
      main.append(el("table", { id: "dkim" }, head(t("dkim.domain"), t("dkim.selector"), t("dkim.name"), t("dkim.type"), t("dkim.value")),
        el("tbody", {}, d.records.map((r) => el("tr", {}, el("td", {}, r.domain), el("td", {}, r.selector),
          el("td", {}, el("code", {}, r.name), r.active === false ? el("div", { className: "muted" }, t("dkim.inactive")) : null),
          el("td", {}, r.type), el("td", {}, el("pre", { className: "dkim-value" }, r.zone_line || r.value)))))));
    },
  });
})();
