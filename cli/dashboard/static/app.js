// kplex dashboard: fetches /api/report every data-refresh-ms and renders
// it. Every number is an element with data-field (and data-pool and/or
// data-tenant) holding only its value as text, so that tests and scrapers
// can read it; CPU and memory show units, with the exact number in
// data-value. Names are set as text, never as HTML. The token travels in
// an HttpOnly cookie the server set when the printed URL was opened: this
// script never sees it, and same-origin fetches carry it.
"use strict";

(function () {
  const body = document.body;
  const refresh = Number(body.dataset.refreshMs) || 5000;

  // el makes an element: attrs are attributes (null ones are skipped),
  // children are nodes or strings.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined) e.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  // field is one value: <span data-pool data-tenant data-field>text</span>.
  function field(tag, ids, name, text, value) {
    const attrs = Object.assign({}, ids, { "data-field": name });
    if (value !== undefined) attrs["data-value"] = value;
    return el(tag, attrs, text);
  }

  function poolName(name) { return name === "" ? "(no pool)" : name; }

  function percent(part, whole) {
    return whole > 0 ? Math.floor((part * 100) / whole) + "%" : "-";
  }

  function cores(m) { return String(m / 1000); }

  function bytes(b) {
    const units = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if (b < 1024) return String(b);
    let v = b / 1024, i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return v.toFixed(1).replace(/\.0$/, "") + units[i];
  }

  function level(fraction) {
    if (fraction >= 0.9) return "high";
    if (fraction >= 0.7) return "mid";
    return "low";
  }

  function renderPools(pools) {
    const tbody = document.querySelector("#pools tbody");
    tbody.replaceChildren();
    document.getElementById("no-pools").hidden = pools.length > 0;
    for (const p of pools) {
      const id = { "data-pool": p.name };
      const alloc = p.gpuAllocatable, req = p.gpuRequested, cap = p.gpuCapacity;
      const bar = el("div", { class: "bar", role: "img",
        "aria-label": req + " of " + alloc + " GPUs requested" });
      if (cap > 0) {
        const fill = el("div", { class: "fill " + level(alloc > 0 ? req / alloc : 0) });
        fill.style.width = Math.min(100, (req * 100) / cap) + "%";
        bar.append(fill);
        if (p.gpuUnhealthy > 0) {
          const bad = el("div", { class: "unhealthy", title: p.gpuUnhealthy + " unhealthy" });
          bad.style.width = (p.gpuUnhealthy * 100) / cap + "%";
          bar.append(bad);
        }
      }
      const limit = p.gpuLimit === undefined ? null :
        el("span", { class: "note" }, " limit ", field("span", id, "gpuLimit", p.gpuLimit));
      tbody.append(el("tr", id,
        field("th", Object.assign({ scope: "row" }, id), "name", poolName(p.name)),
        field("td", id, "mode", p.mode || "-"),
        el("td", null, field("span", id, "readyNodes", p.readyNodes), " / ", field("span", id, "nodes", p.nodes)),
        el("td", { class: "wide" }, bar,
          el("span", { class: "figures" },
            field("span", id, "gpuRequested", req), " / ", field("span", id, "gpuAllocatable", alloc),
            el("span", { class: "note" }, " of ", field("span", id, "gpuCapacity", cap), " installed"),
            limit)),
        field("td", id, "gpuPercent", percent(req, alloc)),
        field("td", Object.assign({ class: p.gpuUnhealthy > 0 ? "bad" : null }, id), "gpuUnhealthy", p.gpuUnhealthy),
        el("td", null, field("span", id, "cpuRequested", cores(p.cpuRequestedMillis), p.cpuRequestedMillis),
          " / ", field("span", id, "cpuAllocatable", cores(p.cpuAllocatableMillis), p.cpuAllocatableMillis)),
        el("td", null, field("span", id, "memoryRequested", bytes(p.memoryRequestedBytes), p.memoryRequestedBytes),
          " / ", field("span", id, "memoryAllocatable", bytes(p.memoryAllocatableBytes), p.memoryAllocatableBytes)),
      ));
    }
  }

  function renderTenants(pools, tenants) {
    const head = document.querySelector("#tenants thead tr");
    const tbody = document.querySelector("#tenants tbody");
    document.getElementById("no-tenants").hidden = tenants.length > 0;
    head.replaceChildren(el("th", { scope: "col" }, "Tenant"),
      ...pools.map((p) => el("th", { scope: "col", "data-pool": p.name }, poolName(p.name))),
      el("th", { scope: "col" }, "GPUs in all pools"),
      el("th", { scope: "col" }, "Pods"),
      el("th", { scope: "col" }, "Pending"));
    tbody.replaceChildren();
    const allocatable = new Map(pools.map((p) => [p.name, p.gpuAllocatable]));
    for (const t of tenants) {
      const tid = { "data-tenant": t.name };
      const byPool = new Map(t.pools.map((tp) => [tp.pool, tp]));
      const row = el("tr", tid, field("th", Object.assign({ scope: "row" }, tid), "name", t.name || "-"));
      for (const p of pools) {
        const tp = byPool.get(p.name);
        if (!tp) {
          row.append(el("td", { class: "cell none" }, "·"));
          continue;
        }
        const id = { "data-tenant": t.name, "data-pool": p.name };
        const alloc = allocatable.get(p.name) || 0;
        const share = alloc > 0 ? Math.min(1, tp.gpuUsed / alloc) : 0;
        const cell = el("td", Object.assign({ class: "cell" + (tp.gpuBorrowed > 0 ? " borrowing" : "") }, id),
          field("span", id, "gpuUsed", tp.gpuUsed));
        cell.style.backgroundColor = "rgba(37, 99, 235, " + (0.08 + share * 0.72).toFixed(2) + ")";
        if (share > 0.5) cell.classList.add("dark");
        let title = (t.name || "-") + " in " + poolName(p.name) + ": " + tp.gpuUsed + " of " + alloc +
          " allocatable GPUs, " + tp.pods + " pods";
        if (tp.gpuNominal !== undefined) {
          const limit = tp.gpuBorrowingLimit === undefined ? "∞" :
            field("span", id, "gpuBorrowingLimit", tp.gpuBorrowingLimit);
          cell.append(el("span", { class: "quota" }, " / ", field("span", id, "gpuNominal", tp.gpuNominal), "+", limit));
          cell.append(el("span", { class: "borrowed" }, field("span", id, "gpuBorrowed", tp.gpuBorrowed), " borrowed"));
          title += "; quota " + tp.gpuNominal + " + " + (tp.gpuBorrowingLimit === undefined ? "∞" : tp.gpuBorrowingLimit) +
            ", " + tp.gpuBorrowed + " borrowed";
        }
        cell.append(el("span", { class: "pods" }, field("span", id, "pods", tp.pods), tp.pods === 1 ? " pod" : " pods"));
        cell.title = title;
        row.append(cell);
      }
      const reasons = t.pending.map((p) => p.pods + " " + p.reason).join(", ");
      row.append(
        field("td", tid, "gpuUsed", t.gpuUsed),
        field("td", tid, "pods", t.pods),
        el("td", { class: t.pendingPods > 0 ? "pending waiting" : "pending" },
          field("span", tid, "pendingPods", t.pendingPods),
          t.pendingPods > 0 ? el("span", { class: "reasons" }, " (", field("span", tid, "pending", reasons), ")") : null));
      tbody.append(row);
    }
  }

  function setState(state, message) {
    body.dataset.state = state;
    const status = document.getElementById("status");
    status.textContent = message;
    status.className = state;
  }

  async function load() {
    try {
      const resp = await fetch("/api/report", { credentials: "same-origin", cache: "no-store" });
      const data = await resp.json().catch(() => ({}));
      if (!resp.ok) throw new Error(data.error || resp.status + " " + resp.statusText);
      renderPools(data.pools || []);
      renderTenants(data.pools || [], data.tenants || []);
      const updated = document.getElementById("updated");
      updated.dateTime = data.time;
      updated.textContent = new Date(data.time).toLocaleTimeString();
      setState("ok", "ok");
    } catch (e) {
      // Keep the last figures; say they are stale.
      setState("error", "error: " + (e && e.message ? e.message : e));
    } finally {
      setTimeout(load, refresh);
    }
  }

  load();
})();
