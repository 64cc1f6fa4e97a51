// blockspace dashboard: reads the data API and draws plain SVG charts (no library, no network
// beyond this server). Sets <body data-state="loaded" data-slots="N"> once the first render is
// done, which the browser test waits for.
"use strict";

(() => {
  const OUTCOMES = ["won", "lost", "replaced", "cancelled", "rejected"];
  const css = getComputedStyle(document.documentElement);
  const color = (name) => css.getPropertyValue(`--${name}`).trim();
  const params = new URLSearchParams(location.search);
  const REFRESH_MS = params.has("refresh") ? Number(params.get("refresh")) * 1000 : 5000;
  const SVG = "http://www.w3.org/2000/svg";
  const H = 210, M = { left: 58, right: 12, top: 10, bottom: 26 };
  // Charts draw in CSS pixels at their container's width, so text keeps its size on wide cards.
  const widthOf = (container) => Math.max(320, Math.round(container.clientWidth || 600));

  const $ = (sel) => document.querySelector(sel);
  const el = (tag, attrs = {}, text) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const svgEl = (tag, attrs = {}, text) => {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  };

  // --- numbers ------------------------------------------------------------------------------

  const wei = (s) => (s === null || s === undefined ? null : Number(BigInt(s)));
  function weiUnit(maxWei) {
    if (maxWei >= 1e15) return { name: "ETH", scale: 1e18, digits: 4 };
    if (maxWei >= 1e6) return { name: "gwei", scale: 1e9, digits: 2 };
    return { name: "wei", scale: 1, digits: 0 };
  }
  const fmt = (x, digits = 2) =>
    x === null || x === undefined || Number.isNaN(x)
      ? "–"
      : x.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
  const pct = (x) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)}%`);
  const shortHash = (h) => (h ? `${h.slice(0, 8)}…${h.slice(-4)}` : "–");
  const clock = (ms) => new Date(ms).toISOString().slice(11, 19);

  function niceStep(max, ticks = 4) {
    if (!(max > 0)) return 1;
    const raw = max / ticks;
    const pow = 10 ** Math.floor(Math.log10(raw));
    const n = raw / pow;
    return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 2.5 ? 2.5 : n <= 5 ? 5 : 10) * pow;
  }

  // --- charts -------------------------------------------------------------------------------

  function frame(container, slots, ymax, yfmt) {
    const W = widthOf(container);
    const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
    const plotW = W - M.left - M.right, plotH = H - M.top - M.bottom;
    const step = niceStep(ymax);
    const top = Math.max(step, Math.ceil(ymax / step) * step);
    const y = (v) => M.top + plotH - (v / top) * plotH;
    for (let v = 0; v <= top + step / 2; v += step) {
      svg.append(svgEl("line", { class: "axis", x1: M.left, x2: W - M.right, y1: y(v), y2: y(v) }));
      svg.append(svgEl("text", { class: "tick", x: M.left - 6, y: y(v) + 4, "text-anchor": "end" }, yfmt(v)));
    }
    const n = slots.length;
    const band = plotW / Math.max(n, 1);
    const x = (i) => M.left + i * band;
    const marks = n > 1 ? [0, Math.floor((n - 1) / 2), n - 1] : [0];
    for (const i of marks) {
      if (i >= n) continue;
      svg.append(svgEl("text", { class: "tick", x: x(i) + band / 2, y: H - 8, "text-anchor": "middle" }, String(slots[i])));
    }
    container.replaceChildren(svg);
    return { svg, x, y, band, plotH };
  }

  function empty(container, message) {
    const W = widthOf(container);
    const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}` });
    svg.append(svgEl("text", { class: "empty", x: W / 2, y: H / 2, "text-anchor": "middle" }, message));
    container.replaceChildren(svg);
  }

  function bars(container, slots, values, { fill, yfmt, tip }) {
    const max = Math.max(0, ...values.filter((v) => v !== null));
    const { svg, x, y, band } = frame(container, slots, max, yfmt);
    values.forEach((v, i) => {
      if (v === null) return;
      const h = y(0) - y(Math.max(v, 0));
      const rect = svgEl("rect", {
        class: "bar", x: x(i) + band * 0.12, y: y(0) - h, width: Math.max(band * 0.76, 0.8), height: h, fill,
      });
      rect.append(svgEl("title", {}, `slot ${slots[i]}: ${tip(v)}`));
      svg.append(rect);
    });
  }

  function stacked(container, slots, series, { yfmt }) {
    const totals = slots.map((_, i) => series.reduce((a, s) => a + s.values[i], 0));
    const { svg, x, y, band } = frame(container, slots, Math.max(0, ...totals), yfmt);
    slots.forEach((slot, i) => {
      let base = 0;
      for (const s of series) {
        const v = s.values[i];
        if (!v) continue;
        const rect = svgEl("rect", {
          class: "bar", x: x(i) + band * 0.12, y: y(base + v), width: Math.max(band * 0.76, 0.8),
          height: y(base) - y(base + v), fill: s.color,
        });
        rect.append(svgEl("title", {}, `slot ${slot}: ${v} ${s.name}`));
        svg.append(rect);
        base += v;
      }
    });
  }

  function lines(container, slots, series, { yfmt, ymax }) {
    const all = series.flatMap((s) => s.values.filter((v) => v !== null));
    const { svg, x, y, band } = frame(container, slots, ymax ?? Math.max(0, ...all), yfmt);
    for (const s of series) {
      let d = "";
      s.values.forEach((v, i) => {
        if (v === null) return;
        d += `${d && s.values[i - 1] !== null ? "L" : "M"}${(x(i) + band / 2).toFixed(1)},${y(v).toFixed(1)}`;
      });
      svg.append(svgEl("path", { class: "line", d, fill: "none", stroke: s.color, "stroke-width": 2 }));
      s.values.forEach((v, i) => {
        if (v === null) return;
        const dot = svgEl("circle", { cx: x(i) + band / 2, cy: y(v), r: 2.4, fill: s.color });
        dot.append(svgEl("title", {}, `slot ${slots[i]}: ${s.name} ${s.tip(v)}`));
        svg.append(dot);
      });
    }
  }

  function legend(node, items) {
    node.replaceChildren(
      ...items.map(([name, c]) => {
        const span = el("span");
        const swatch = el("i");
        swatch.style.background = c;
        span.append(swatch, name);
        return span;
      }),
    );
  }

  // --- data ---------------------------------------------------------------------------------

  async function getJSON(path) {
    const r = await fetch(path, { headers: { accept: "application/json" } });
    const body = await r.json();
    if (!r.ok) throw new Error(`${path}: ${body.message || r.statusText}`);
    return body;
  }

  async function loadSlots(rollup, n) {
    let items = [];
    let cursor = null;
    while (items.length < n) {
      const q = new URLSearchParams({ rollup, limit: Math.min(200, n - items.length) });
      if (cursor) q.set("cursor", cursor);
      const page = await getJSON(`/v1/data/slots?${q}`);
      items = items.concat(page.data);
      cursor = page.next_cursor;
      if (!cursor) break;
    }
    return items.reverse(); // oldest first, left to right
  }

  // --- render -------------------------------------------------------------------------------

  function tiles(stats, deployment, unit) {
    const t = [
      ["slots", fmt(stats.slots, 0)],
      [`revenue (${unit.name})`, fmt(wei(stats.revenue_wei) / unit.scale, unit.digits)],
      ["bids", fmt(stats.bids, 0)],
      ["rejected", fmt(stats.rejected, 0)],
      ["winning bundles", fmt(stats.winners, 0)],
      ["top winner share", pct(stats.wins_concentration.top1_share)],
      ["wins HHI", fmt(stats.wins_concentration.hhi, 3)],
      ["gas HHI", fmt(stats.gas_concentration.hhi, 3)],
      ["price of fairness", pct(stats.price_of_fairness_ratio)],
      ["failed slots", fmt(stats.failed_slots, 0)],
      // The rollup's shares of cross-rollup bundles' payments; over every rollup, each bundle's
      // payment counted once.
      ["cross-rollup revenue", pct(stats.cross_revenue_share)],
      ["cross-rollup, all rollups", pct(deployment.cross_revenue_share)],
    ];
    $("#tiles").replaceChildren(
      ...t.map(([label, value]) => {
        const tile = el("div", { class: "tile" });
        tile.append(el("div", { class: "label" }, label), el("div", { class: "value" }, value));
        return tile;
      }),
    );
  }

  function table(slots, unit) {
    const rows = slots.slice(-12).reverse().map((s) => {
      const tr = el("tr");
      const status = s.committee ? s.committee.status : "pending";
      const badge = el("span", { class: `badge ${status}` }, status);
      const committee = el("td");
      committee.append(badge);
      tr.append(
        el("td", {}, String(s.slot)),
        el("td", {}, clock(s.recorded_ms)),
        el("td", { class: "hash", title: s.block_hash }, shortHash(s.block_hash)),
        el("td", { class: "num" }, fmt(s.bids, 0)),
        el("td", { class: "num" }, fmt(s.winners, 0)),
        el("td", { class: "num" }, fmt(s.cross_winners ?? 0, 0)),
        el("td", { class: "num" }, `${fmt(wei(s.revenue_wei) / unit.scale, unit.digits)} ${unit.name}`),
        el("td", { class: "num" }, `${pct(s.gas_limit ? s.gas_used / s.gas_limit : null)}`),
        el("td", { class: "num" }, pct(s.wins_top1_share)),
        committee,
      );
      return tr;
    });
    $("#blocks tbody").replaceChildren(...rows);
  }

  function winners(bids, unit) {
    const rows = bids.map((b) => {
      const tr = el("tr", b.cross ? { class: "cross" } : {});
      const spans = el("td", { class: "rollups" });
      if (b.cross) spans.append(el("span", { class: "cross-mark", title: "cross-rollup bundle" }, "⇄ "));
      spans.append(b.rollups.join(" + "));
      tr.append(
        el("td", {}, String(b.slot)),
        el("td", { class: "hash", title: b.searcher }, shortHash(b.searcher)),
        el("td", { class: "hash", title: b.bundle_hash || "" }, shortHash(b.bundle_hash)),
        spans,
        el("td", { class: "num" }, fmt(b.gas, 0)),
        el("td", { class: "num" }, `${fmt(wei(b.bid_wei) / unit.scale, unit.digits)} ${unit.name}`),
        el("td", { class: "num" }, `${fmt(wei(b.payment_wei) / unit.scale, unit.digits)} ${unit.name}`),
      );
      return tr;
    });
    $("#winners tbody").replaceChildren(...rows);
  }

  async function render() {
    const rollup = $("#rollup").value;
    const n = Number($("#window").value);
    const slots = await loadSlots(rollup, n);
    const status = $("#status");
    if (!slots.length) {
      for (const id of ["revenue", "bids", "price", "concentration", "fairness", "cross"]) {
        empty($(`#chart-${id} .chart`), "no closed slots yet");
      }
      $("#tiles").replaceChildren();
      $("#blocks tbody").replaceChildren();
      $("#winners tbody").replaceChildren();
      status.textContent = `rollup ${rollup}: no history yet`;
      return 0;
    }
    const first = slots[0].slot, last = slots[slots.length - 1].slot;
    const range = `from_slot=${first}&to_slot=${last}`;
    const stats = await getJSON(`/v1/data/stats?rollup=${rollup}&${range}`);
    const deployment = await getJSON(`/v1/data/stats?${range}`);
    const won = await getJSON(`/v1/data/bids?rollup=${rollup}&outcome=won&limit=20`);
    const numbers = slots.map((s) => s.slot);

    const revenue = slots.map((s) => wei(s.revenue_wei));
    const unit = weiUnit(Math.max(...revenue));
    document.querySelectorAll("[data-unit]").forEach((u) => (u.textContent = `(${unit.name})`));
    const inUnit = (v) => v / unit.scale;
    bars($("#chart-revenue .chart"), numbers, revenue.map(inUnit), {
      fill: color("accent"), yfmt: (v) => fmt(v, unit.digits), tip: (v) => `${fmt(v, unit.digits)} ${unit.name}`,
    });

    const bidSeries = OUTCOMES.map((o) => ({ name: o, color: color(o), values: slots.map((s) => s.outcomes[o]) }));
    stacked($("#chart-bids .chart"), numbers, bidSeries, { yfmt: (v) => fmt(v, 0) });
    legend($("#legend-bids"), OUTCOMES.map((o) => [o, color(o)]));

    const price = slots.map((s) => (s.clearing_price_wei_per_gas === null ? null : wei(s.clearing_price_wei_per_gas) / 1e9));
    lines($("#chart-price .chart"), numbers, [{ name: "clearing price", color: color("accent"), values: price, tip: (v) => `${fmt(v, 3)} gwei/gas` }], {
      yfmt: (v) => fmt(v, 2),
    });

    lines($("#chart-concentration .chart"), numbers, [
      { name: "top winner share", color: color("accent"), values: slots.map((s) => s.wins_top1_share), tip: pct },
      { name: "HHI", color: color("hhi"), values: slots.map((s) => s.wins_hhi), tip: (v) => fmt(v, 3) },
    ], { yfmt: (v) => fmt(v, 2), ymax: 1 });
    legend($("#legend-concentration"), [["top winner share of winning bundles", color("accent")], ["Herfindahl index", color("hhi")]]);

    bars($("#chart-fairness .chart"), numbers, slots.map((s) => inUnit(wei(s.price_of_fairness_wei))), {
      fill: color("hhi"), yfmt: (v) => fmt(v, unit.digits), tip: (v) => `${fmt(v, unit.digits)} ${unit.name}`,
    });

    const crossShare = slots.map((s) => {
      const total = wei(s.revenue_wei);
      return total > 0 ? wei(s.cross_revenue_wei ?? "0") / total : null;
    });
    lines($("#chart-cross .chart"), numbers, [
      { name: "cross-rollup share", color: color("cross"), values: crossShare, tip: pct },
    ], { yfmt: (v) => `${fmt(v * 100, 0)}%`, ymax: 1 });

    tiles(stats, deployment, unit);
    table(slots, unit);
    winners(won.data, unit);
    const q = `rollup=${rollup}&from_slot=${first}&to_slot=${last}`;
    $("#export-slots").href = `/v1/data/export/slots.csv?${q}`;
    $("#export-bids").href = `/v1/data/export/bids.csv?${q}`;
    status.classList.remove("error");
    status.textContent = `slots ${first}–${last} · updated ${clock(Date.now())} UTC`;
    return slots.length;
  }

  // --- the ledger (deposits, revenue, stakes, slashings: /v1/ledger) -----------------------

  const eth = (s) => fmt(wei(s) / 1e18, 4);

  function causeText(c) {
    if (c.block_hash) return `slot ${c.slot} block ${shortHash(c.block_hash)}`;
    if (c.evidence_id) return `evidence ${shortHash(c.evidence_id)}`;
    return c.ref || "";
  }

  async function renderLedger() {
    const [revenue, stakes, entries, slashings] = await Promise.all([
      getJSON("/v1/ledger/balances/operator:revenue"),
      getJSON("/v1/ledger/stakes"),
      getJSON("/v1/ledger/entries?limit=12"),
      getJSON("/v1/ledger/slashings?limit=12"),
    ]);
    const staked = stakes.members.reduce((sum, m) => sum + BigInt(m.stake_wei), 0n);
    const t = [
      ["revenue credited", eth(revenue.balance_wei)],
      ["operator bond", eth(stakes.operator_bond_wei)],
      ["member stakes", eth(staked.toString())],
      ["slashings", fmt(slashings.slashings.length, 0) + (slashings.next ? "+" : "")],
    ];
    $("#ledger-tiles").replaceChildren(
      ...t.map(([label, value]) => {
        const tile = el("div", { class: "tile" });
        tile.append(el("div", { class: "label" }, label), el("div", { class: "value" }, value));
        return tile;
      }),
    );
    $("#ledger-entries tbody").replaceChildren(
      ...entries.entries.map((e) => {
        const tr = el("tr", { class: e.kind });
        tr.append(
          el("td", {}, e.id),
          el("td", { class: "hash", title: e.account }, e.account.startsWith("0x") ? shortHash(e.account) : e.account),
          el("td", {}, e.kind),
          el("td", { class: "num" }, eth(e.amount_wei)),
          el("td", { class: "num" }, eth(e.balance_wei)),
          el("td", {}, causeText(e.cause)),
        );
        return tr;
      }),
    );
    $("#slashings tbody").replaceChildren(
      ...slashings.slashings.map((s) => {
        const tr = el("tr");
        tr.append(
          el("td", {}, s.id),
          el("td", {}, s.offender || ""),
          el("td", { class: "hash", title: s.evidence_id }, shortHash(s.evidence_id)),
          el("td", { class: "num" }, eth(s.burned_wei)),
        );
        return tr;
      }),
    );
  }

  let timer = null;
  async function refresh() {
    clearTimeout(timer);
    try {
      const n = await render();
      await renderLedger();
      document.body.dataset.slots = String(n);
      document.body.dataset.state = "loaded";
    } catch (err) {
      const status = $("#status");
      status.textContent = String(err.message || err);
      status.classList.add("error");
      document.body.dataset.state = "error";
    }
    if (REFRESH_MS > 0) timer = setTimeout(refresh, REFRESH_MS);
  }

  async function start() {
    try {
      const { rollups } = await getJSON("/v1/data/rollups");
      const select = $("#rollup");
      select.replaceChildren(...rollups.map((r) => el("option", { value: String(r) }, String(r))));
      if (params.has("rollup")) select.value = params.get("rollup");
      if (params.has("slots")) $("#window").value = params.get("slots");
    } catch (err) {
      $("#status").textContent = String(err.message || err);
      document.body.dataset.state = "error";
      return;
    }
    $("#rollup").addEventListener("change", refresh);
    $("#window").addEventListener("change", refresh);
    await refresh();
  }

  start();
})();
