"use strict";
// lmaudit report: decodes its own data (gzip + base64, DecompressionStream), then draws the summary, a
// virtualised sample browser with filters and search, the A/B tables and the maps. No network, no library.
(async function main() {
  const ROW = 28;
  const $ = (id) => document.getElementById(id);
  const statusLine = $("lm-status");
  const timings = { start: performance.now() };
  const D = await decode();
  timings.decoded = performance.now();
  const STR = D.strings;
  const S = D.samples;
  const N = S.run.length;
  const RUNS = D.runs;
  const MISSING = -1;
  const LL = 0, GEN = 1;  // exchange kinds (payload.py)

  async function decode() {
    // The browser decodes base64 and gunzips in native code, and Response.json() parses the bytes without
    // first building the whole text as one JS string; then the encoded text is dropped. Uint8Array.fromBase64
    // (Chromium 140+, Firefox 133+, Safari 18.2+) takes 10 ms where a data: URL fetch takes about 100 ms.
    const holder = $("lm-data");
    const text = holder.textContent.trim();
    holder.textContent = "";
    const body = Uint8Array.fromBase64 ? new Blob([Uint8Array.fromBase64(text)]).stream()
      : (await fetch("data:application/octet-stream;base64," + text)).body;
    return new Response(body.pipeThrough(new DecompressionStream("gzip"))).json();
  }

  // -- helpers ---------------------------------------------------------------------------------------
  const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const esc = (v) => String(v === null || v === undefined ? "" : v).replace(/[&<>"']/g, (c) => ESC[c]);
  const str = (i) => (i === null || i === undefined || i < 0 ? "" : STR[i]);
  const fmt = (v, d = 4) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));
  const fmtP = (p) => (p === null || p === undefined ? "–" : p < 1e-4 ? p.toExponential(2) : p.toFixed(4));
  let stringIndex = null;
  function stringId(text) {
    if (stringIndex === null) {
      stringIndex = new Map();
      STR.forEach((s, i) => stringIndex.set(s, i));
    }
    const found = stringIndex.get(text);
    return found === undefined ? MISSING : found;
  }
  function option(value, label, selected) {
    return `<option value="${esc(value)}"${selected ? " selected" : ""}>${esc(label)}</option>`;
  }

  // -- tabs ------------------------------------------------------------------------------------------
  const views = [["summary", "Summary"], ["samples", `Samples (${N})`]];
  if (D.comparisons.length) views.push(["ab", "A/B"]);
  if (D.maps.length) views.push(["map", "Map"]);
  const tabs = $("lm-tabs");
  tabs.innerHTML = views.map(([id, label]) => `<button data-view="${id}" id="tab-${id}">${esc(label)}</button>`)
    .join("");
  function show(view) {
    for (const [id] of views) {
      $("view-" + id).classList.toggle("active", id === view);
      $("tab-" + id).classList.toggle("active", id === view);
    }
    if (view === "samples") renderRows();
  }
  tabs.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-view]");
    if (button) show(button.dataset.view);
  });

  // -- summary ---------------------------------------------------------------------------------------
  function groupKeys(rows, at) {
    const keys = new Set();
    for (const row of rows) if (row[at]) keys.add(row[at].split("=")[0]);
    return [...keys];
  }
  function breakdownSelect(id, keys) {
    return `<label>rows: <select id="${id}">${option("", "overall", true)}${option("*", "all groups")}` +
      keys.map((k) => option(k, "by " + k)).join("") + "</select></label>";
  }
  function keep(group, choice) {
    if (choice === "") return !group;
    if (choice === "*") return true;
    return !group || group.startsWith(choice + "=");
  }
  function summaryTable(run, choice) {
    const mark = { "match": "✓ matches", "differs": "✗ differs", "as written": "as written",
      "not in results.json": "not in results.json" };
    const body = run.rows.filter((r) => keep(r[1], choice)).map((r) =>
      `<tr class="${r[8] === "differs" ? "differs" : ""}"><td>${esc(r[0] || "")}</td><td>${esc(r[1] || "all")}</td>` +
      `<td>${esc(r[2])}</td><td class="num">${fmt(r[3])}</td><td class="num">${fmt(r[4])}</td>` +
      `<td class="num">[${fmt(r[5], 3)}, ${fmt(r[6], 3)}]</td><td class="num">${r[7] === null ? "–" : r[7]}</td>` +
      `<td class="${r[8] === "match" ? "" : "muted"}">${mark[r[8]] || esc(r[8])}</td></tr>`).join("");
    return `<table class="lm-summary"><thead><tr><th>task</th><th>group</th><th>metric</th><th>value</th>` +
      `<th>± stderr</th><th>95% CI</th><th>n</th><th>vs results.json</th></tr></thead><tbody>${body}</tbody></table>`;
  }
  function renderSummary() {
    const parts = [];
    RUNS.forEach((run, index) => {
      const counts = {};
      for (const r of run.rows) counts[r[8]] = (counts[r[8]] || 0) + 1;
      const recomputed = (counts["match"] || 0) + (counts["differs"] || 0);
      const badge = counts["differs"]
        ? `<span class="badge warn">${counts["differs"]} of ${recomputed} recomputed rows differ from results.json</span>`
        : recomputed ? `<span class="badge ok">${recomputed} of ${run.rows.length} rows recomputed from samples.jsonl ` +
          `match results.json</span>` : `<span class="badge info">no rows could be recomputed</span>`;
      const notes = run.notes.map((n) => `<p class="muted">${esc(n)}</p>`).join("");
      const figures = run.figures.map((f) => `<figure><img alt="${esc(f.name)}" src="${f.src}">` +
        `<figcaption class="muted">${esc(f.name)}</figcaption></figure>`).join("");
      parts.push(`<div class="card run-card" data-run="${index}"><h2>${index + 1}. ${esc(run.label)} ` +
        `<span class="muted">(${esc(run.kind)}, ${run.n} samples)</span></h2>` +
        `<p class="muted">${esc(run.path)} · recomputed with ${esc(run.method)}</p><p>${badge}</p>${notes}` +
        `${breakdownSelect("breakdown-" + index, groupKeys(run.rows, 1))}` +
        `<div class="tablewrap" id="summary-${index}">${summaryTable(run, "")}</div>` +
        (figures ? `<h3>Figures</h3><div class="figures">${figures}</div>` : "") + "</div>");
    });
    $("view-summary").innerHTML = parts.join("");
    RUNS.forEach((run, index) => {
      $("breakdown-" + index).addEventListener("change", (e) => {
        $("summary-" + index).innerHTML = summaryTable(run, e.target.value);
      });
    });
  }

  // -- browser: filters ------------------------------------------------------------------------------
  const state = { run: -1, task: -1, group: -1, outcome: "all", metric: -1, min: null, max: null, judge: -1,
    verdict: -1, contamination: "all", flip: -1, search: "", node: null };
  let visible = new Int32Array(0);
  let selected = -1;

  function distinct(column) {
    const seen = new Set();
    for (let i = 0; i < N; i++) seen.add(column[i]);
    return [...seen];
  }
  function distinctPairs(column, at) {
    const seen = new Set();
    for (let i = 0; i < N; i++) {
      const pairs = column[i];
      for (let j = at; j < pairs.length; j += 2) seen.add(pairs[j]);
    }
    return [...seen];
  }
  function distinctNested(column, at) {
    const seen = new Set();
    for (let i = 0; i < N; i++) for (const pair of column[i]) seen.add(pair[at]);
    return [...seen];
  }
  function groupOptions() {
    const seen = new Set();
    for (let i = 0; i < N; i++) for (const g of S.groups[i]) seen.add(g);
    const byKey = new Map();
    for (const id of seen) {
      const text = STR[id];
      const key = text.split("=")[0];
      if (!byKey.has(key)) byKey.set(key, []);
      byKey.get(key).push(id);
    }
    let html = option(-1, "all groups", true);
    for (const [key, ids] of [...byKey.entries()].sort()) {
      ids.sort((a, b) => STR[a].localeCompare(STR[b]));
      html += `<optgroup label="${esc(key)}">` + ids.map((id) => option(id, STR[id])).join("") + "</optgroup>";
    }
    return html;
  }
  function renderFilters() {
    const byName = (ids) => ids.sort((a, b) => str(a).localeCompare(str(b)));
    const tasks = byName(distinct(S.task));
    const metrics = byName(distinctNested(S.scores, 0));
    const judges = byName(distinctPairs(S.judges, 0));
    const verdicts = byName(distinctPairs(S.judges, 1));
    const html = [];
    if (RUNS.length > 1) {
      html.push(`<label for="f-run">run</label><select id="f-run">${option(-1, "all runs", true)}` +
        RUNS.map((r, i) => option(i, `${i + 1}. ${r.label}`)).join("") + "</select>");
    }
    html.push(`<label for="f-task">task</label><select id="f-task">${option(-1, "all tasks", true)}` +
      tasks.map((t) => option(t, str(t))).join("") + "</select>");
    html.push(`<label for="f-group">group</label><select id="f-group">${groupOptions()}</select>`);
    html.push(`<label for="f-outcome">outcome</label><select id="f-outcome">${option("all", "all", true)}` +
      option("correct", "correct") + option("incorrect", "incorrect") + "</select>");
    html.push(`<label for="f-metric">score range</label><select id="f-metric">${option(-1, "(choose a score)", true)}` +
      metrics.map((m) => option(m, str(m))).join("") + `</select><div class="pair">` +
      `<input id="f-min" type="number" step="any" placeholder="min"><input id="f-max" type="number" step="any" ` +
      `placeholder="max"></div>`);
    if (judges.length) {
      html.push(`<label for="f-judge">judge verdict</label><select id="f-judge">${option(-1, "any judge", true)}` +
        judges.map((j) => option(j, str(j))).join("") + `</select><select id="f-verdict">` +
        option(-1, "any verdict", true) + verdicts.map((v) => option(v, str(v))).join("") + "</select>");
    }
    if (S.contaminated.some((c) => c !== MISSING)) {
      html.push(`<label for="f-contamination">contamination</label><select id="f-contamination">` +
        option("all", "all", true) + option("contaminated", "contaminated") + option("clean", "clean") +
        option("unchecked", "not checked") + "</select>");
    }
    if (D.comparisons.length) {
      html.push(`<label for="f-flip">A/B</label><select id="f-flip">${option(-1, "all samples", true)}` +
        D.comparisons.map((c, i) => option(i, `flipped: ${RUNS[c.a].label} vs ${RUNS[c.b].label} ` +
          `(${c.flips.length})`)).join("") + "</select>");
    }
    html.push(`<label for="f-search">search (prompts, responses, ids, metadata)</label>` +
      `<input id="f-search" type="search" placeholder="text…">`);
    html.push(`<p><button class="link" id="f-reset">reset filters</button></p>`);
    $("lm-filters").innerHTML = html.join("");
    const number = (v) => (v === "" ? null : Number(v));
    const bind = (id, event, update) => { const el = $(id); if (el) el.addEventListener(event, () => { update(el); apply(); }); };
    bind("f-run", "change", (el) => { state.run = Number(el.value); });
    bind("f-task", "change", (el) => { state.task = Number(el.value); });
    bind("f-group", "change", (el) => { state.group = Number(el.value); });
    bind("f-outcome", "change", (el) => { state.outcome = el.value; });
    bind("f-metric", "change", (el) => { state.metric = Number(el.value); });
    bind("f-min", "input", (el) => { state.min = number(el.value); });
    bind("f-max", "input", (el) => { state.max = number(el.value); });
    bind("f-judge", "change", (el) => { state.judge = Number(el.value); });
    bind("f-verdict", "change", (el) => { state.verdict = Number(el.value); });
    bind("f-contamination", "change", (el) => { state.contamination = el.value; });
    bind("f-flip", "change", (el) => { state.flip = Number(el.value); });
    let timer = null;
    $("f-search").addEventListener("input", (e) => {
      clearTimeout(timer);
      timer = setTimeout(() => { state.search = e.target.value.trim(); apply(); }, 120);
    });
    $("f-reset").addEventListener("click", resetFilters);
  }
  function resetFilters() {
    Object.assign(state, { run: -1, task: -1, group: -1, outcome: "all", metric: -1, min: null, max: null,
      judge: -1, verdict: -1, contamination: "all", flip: -1, search: "", node: null });
    renderFilters();
    apply();
  }

  // -- browser: search -------------------------------------------------------------------------------
  let lowered = null;
  let refStart = null;
  let refs = null;
  function buildSearchIndex() {
    lowered = STR.map((s) => s.toLowerCase());
    const flat = [];
    refStart = new Int32Array(N + 1);
    for (let i = 0; i < N; i++) {
      refStart[i] = flat.length;
      const d = S.detail[i];
      flat.push(S.task[i], S.id[i]);
      if (d.t >= 0) flat.push(d.t);
      for (const g of S.groups[i]) flat.push(g);
      for (const [k, v] of d.m || []) { if (v >= 0) flat.push(v); if (k >= 0) flat.push(k); }
      for (const x of d.x) { if (x[2] >= 0) flat.push(x[2]); if (x[3] >= 0) flat.push(x[3]); }
    }
    refStart[N] = flat.length;
    refs = Int32Array.from(flat);
  }
  function searchMask(query) {
    if (lowered === null) buildSearchIndex();
    const q = query.toLowerCase();
    const hit = new Uint8Array(STR.length);
    for (let s = 0; s < lowered.length; s++) if (lowered[s].includes(q)) hit[s] = 1;
    const mask = new Uint8Array(N);
    for (let i = 0; i < N; i++) {
      for (let j = refStart[i]; j < refStart[i + 1]; j++) if (hit[refs[j]]) { mask[i] = 1; break; }
    }
    return mask;
  }

  // -- browser: filtering ----------------------------------------------------------------------------
  function scoreOf(i, metric) {
    for (const [m, v] of S.scores[i]) if (m === metric) return v;
    return null;
  }
  function verdictOf(i, judge) {
    const pairs = S.judges[i];
    for (let j = 0; j < pairs.length; j += 2) if (pairs[j] === judge) return pairs[j + 1];
    return MISSING;
  }
  function flipMask(index) {
    const mask = new Uint8Array(N);
    for (const [a, b] of D.comparisons[index].flips) { if (a >= 0) mask[a] = 1; if (b >= 0) mask[b] = 1; }
    return mask;
  }
  function apply() {
    const out = new Int32Array(N);
    let k = 0;
    const hits = state.search ? searchMask(state.search) : null;
    const flips = state.flip >= 0 ? flipMask(state.flip) : null;
    const node = state.node;
    const ranged = state.metric >= 0 && (state.min !== null || state.max !== null);
    for (let i = 0; i < N; i++) {
      if (state.run >= 0 && S.run[i] !== state.run) continue;
      if (state.task >= 0 && S.task[i] !== state.task) continue;
      if (state.group >= 0 && !S.groups[i].includes(state.group)) continue;
      if (state.outcome === "correct" && S.ok[i] !== 1) continue;
      if (state.outcome === "incorrect" && S.ok[i] !== 0) continue;
      if (ranged) {
        const v = scoreOf(i, state.metric);
        if (v === null || (state.min !== null && v < state.min) || (state.max !== null && v > state.max)) continue;
      }
      if (state.judge >= 0 || state.verdict >= 0) {
        let found = false;
        const pairs = S.judges[i];
        for (let j = 0; j < pairs.length; j += 2) {
          if ((state.judge < 0 || pairs[j] === state.judge) && (state.verdict < 0 || pairs[j + 1] === state.verdict)) {
            found = true;
            break;
          }
        }
        if (!found) continue;
      }
      const c = S.contaminated[i];
      if (state.contamination === "contaminated" && c !== 1) continue;
      if (state.contamination === "clean" && c !== 0) continue;
      if (state.contamination === "unchecked" && c !== MISSING) continue;
      if (flips && !flips[i]) continue;
      if (node && (!node.runs.has(S.run[i]) || S.task[i] !== node.task || !S.groups[i].some((g) => node.groups.has(g)))) continue;
      if (hits && !hits[i]) continue;
      out[k++] = i;
    }
    visible = out.subarray(0, k);
    $("lm-count").textContent = String(k);
    $("lm-chips").innerHTML = node ? `<span class="chip" id="chip-node" title="remove">map: ${esc(node.label)} ×</span>` : "";
    const chip = $("chip-node");
    if (chip) chip.addEventListener("click", () => { state.node = null; apply(); });
    $("lm-spacer").style.height = k * ROW + "px";
    $("lm-list").scrollTop = 0;
    renderRows();
  }

  // -- browser: the virtualised list -----------------------------------------------------------------
  function snippet(i) {
    const x = S.detail[i].x;
    if (!x.length) return "";
    const first = x.find((e) => e[1] >= 0 && str(e[1]) === "target") || x[0];
    const output = first[0] === GEN && first[3] >= 0;
    const flat = str(output ? first[3] : first[2]).replace(/\s+/g, " ").trim();
    return output ? flat.slice(0, 140) : flat.slice(-140);
  }
  function rowHtml(i) {
    const ok = S.ok[i];
    const mark = ok === 1 ? '<span class="mark ok">✓</span>' : ok === 0 ? '<span class="mark bad">✗</span>' :
      `<span class="mark">${S.primary[i] === null ? "" : "·"}</span>`;
    const run = RUNS.length > 1 ? `<span class="tag run">${S.run[i] + 1}</span>` : "";
    const groups = S.groups[i].slice(0, 2).map((g) => `<span class="tag">${esc(str(g).split("=")[1])}</span>`).join("");
    const score = S.primary[i] === null ? "" : `<span class="tag">${fmt(S.primary[i], 3)}</span>`;
    const contaminated = S.contaminated[i] === 1 ? '<span class="tag">contaminated</span>' : "";
    return `<div class="row${i === selected ? " selected" : ""}" data-i="${i}">${mark}${run}` +
      `<span class="tag">${esc(str(S.task[i]))}</span><b>${esc(str(S.id[i]))}</b> ${groups}${score}${contaminated}` +
      `<span class="muted">${esc(snippet(i))}</span></div>`;
  }
  function renderRows() {
    const list = $("lm-list");
    const top = list.scrollTop;
    const height = list.clientHeight || 600;
    const start = Math.max(0, Math.floor(top / ROW) - 8);
    const end = Math.min(visible.length, Math.ceil((top + height) / ROW) + 8);
    let html = "";
    for (let k = start; k < end; k++) html += rowHtml(visible[k]);
    const rows = $("lm-rows");
    rows.style.transform = `translateY(${start * ROW}px)`;
    rows.innerHTML = html;
  }
  $("lm-list").addEventListener("scroll", () => requestAnimationFrame(renderRows));
  $("lm-rows").addEventListener("click", (event) => {
    const row = event.target.closest(".row");
    if (row) showDetail(Number(row.dataset.i));
  });

  // -- browser: one sample ---------------------------------------------------------------------------
  function pre(text) { return `<pre>${esc(text)}</pre>`; }
  function exchangeHtml(x, index, gold, previous) {
    const [kind, role, input, second, number, note] = x;
    const who = role >= 0 ? esc(str(role)) : "request";
    if (kind === LL) {
      return `<div class="exchange${index === gold ? " gold" : ""}"><b>${who}</b> log-likelihood of ` +
        `<code>${esc(str(second))}</code>: ${fmt(number)}${note ? " (greedy)" : ""}` +
        `${index === gold ? " <span class=\"badge ok\">target</span>" : ""}` +
        (index === 0 || input !== previous ? `<details${index === 0 ? " open" : ""}><summary>context</summary>` +
          `${pre(str(input))}</details>` : "") + "</div>";
    }
    if (kind === GEN) {
      return `<div class="exchange"><b>${who}</b> generation <span class="muted">${esc(str(note))}</span>` +
        `<details><summary>prompt</summary>${pre(str(input))}</details>${pre(str(second))}</div>`;
    }
    return `<div class="exchange"><b>${who}</b> token log-probabilities: ${note} tokens, sum ${fmt(number)}` +
      `${pre(str(input))}</div>`;
  }
  function showDetail(i) {
    selected = i;
    const d = S.detail[i];
    const run = RUNS[S.run[i]];
    const target = str(d.t);
    const gold = /^\d+$/.test(target) && d.x.every((x) => x[0] === LL) ? Number(target) : -1;
    const pairs = S.groups[i].map((g) => { const t = str(g); const at = t.indexOf("="); return [t.slice(0, at), t.slice(at + 1)]; })
      .concat((d.m || []).map(([k, v]) => [str(k), str(v)]));
    const meta = pairs.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join("");
    const scores = S.scores[i].map(([m, v]) => `<tr><td>${esc(str(m))}</td><td class="num">${fmt(v)}</td></tr>`).join("");
    const exchanges = d.x.map((x, index) => exchangeHtml(x, index, gold, index ? d.x[index - 1][2] : null)).join("");
    const judges = d.j ? `<h3>Judge verdicts</h3>` + d.j.map(([name, v]) =>
      `<div><b>${esc(str(name))}</b>: ${esc(str(v))}</div>`).join("") : "";
    const execution = d.e !== undefined ? `<h3>Execution</h3>${pre(JSON.stringify(d.e, null, 2))}` : "";
    const source = d.src !== undefined ? `<p>derived from <b>${esc(str(d.src))}</b></p>` : "";
    $("lm-detail").innerHTML = `<h2 id="detail-id">${esc(str(S.task[i]))} · ${esc(str(S.id[i]))}</h2>` +
      `<p class="muted">run ${S.run[i] + 1}: ${esc(run.label)}</p>${source}` +
      `<p>target: <b>${esc(target || "–")}</b></p>` +
      `<table><tbody>${meta}</tbody></table><h3>Scores</h3><table><tbody>${scores}</tbody></table>` +
      `${judges}${execution}<h3>Requests and responses</h3>${exchanges}`;
    renderRows();
  }
  function openSample(i) {
    show("samples");
    const at = visible.indexOf(i);
    if (at >= 0) $("lm-list").scrollTop = Math.max(0, at * ROW - 100);
    showDetail(i);
  }

  // -- A/B -------------------------------------------------------------------------------------------
  function abTable(c, choice) {
    const body = c.rows.filter((r) => keep(r[1], choice)).map((r) =>
      `<tr><td>${esc(r[0])}</td><td>${esc(r[1] || "all")}</td><td>${esc(r[2])}</td><td class="num">${r[3]}</td>` +
      `<td class="num">${fmt(r[4])}</td><td class="num">${fmt(r[5])}</td><td class="num">${fmt(r[6])}</td>` +
      `<td class="num">[${fmt(r[7], 4)}, ${fmt(r[8], 4)}]</td><td class="num">${fmtP(r[9])}</td>` +
      `<td class="num">${r[10]}</td><td class="num">${r[11]}</td></tr>`).join("");
    return `<table class="lm-ab"><thead><tr><th>task</th><th>group</th><th>metric</th><th>pairs</th><th>A</th>` +
      `<th>B</th><th>B − A</th><th>paired 95% CI</th><th>McNemar p</th><th>B only</th><th>A only</th></tr></thead>` +
      `<tbody>${body}</tbody></table>`;
  }
  function renderAB() {
    const parts = D.comparisons.map((c, index) => {
      const a = RUNS[c.a].label, b = RUNS[c.b].label;
      const flips = c.flips.slice(0, 300).map(([ia, ib, va, vb], k) =>
        `<a data-flip="${k}" data-i="${ib >= 0 ? ib : ia}">${esc(str(S.task[ib >= 0 ? ib : ia]))} · ` +
        `${esc(str(S.id[ib >= 0 ? ib : ia]))}: A ${va} → B ${vb}</a>`).join("");
      return `<div class="card" data-comparison="${index}"><h2>B = ${esc(b)} vs A = ${esc(a)}</h2>` +
        `<p class="muted">${c.shared} shared samples (${c.only_a} only in A, ${c.only_b} only in B); ` +
        `B − A with a paired bootstrap CI (1000 resamples) and McNemar's exact test</p>` +
        `${breakdownSelect("ab-breakdown-" + index, groupKeys(c.rows, 1))}` +
        `<div class="tablewrap" id="ab-table-${index}">${abTable(c, "")}</div>` +
        `<h3>${c.flips.length} flipped samples</h3><p><button class="link" id="ab-show-${index}">show them in the ` +
        `sample browser</button></p><div class="flips">${flips}</div>` +
        (c.flips.length > 300 ? `<p class="muted">first 300 listed; the browser shows all</p>` : "") + "</div>";
    });
    $("view-ab").innerHTML = parts.join("");
    D.comparisons.forEach((c, index) => {
      $("ab-breakdown-" + index).addEventListener("change", (e) => {
        $("ab-table-" + index).innerHTML = abTable(c, e.target.value);
      });
      $("ab-show-" + index).addEventListener("click", () => {
        resetFilters();
        state.flip = index;
        $("f-flip").value = String(index);
        apply();
        show("samples");
      });
    });
    $("view-ab").addEventListener("click", (event) => {
      const link = event.target.closest("a[data-i]");
      if (link) openSample(Number(link.dataset.i));
    });
  }

  // -- maps ------------------------------------------------------------------------------------------
  function renderMaps() {
    $("view-map").innerHTML = D.maps.map((m, index) =>
      `<div class="card"><h2>${esc(m.title)}</h2><p class="muted">${esc(m.task)}: one row per ${esc(m.key)}; ` +
      `click a region to open its samples in the browser (a run's swatch: that run only)` +
      (m.unmapped.length ? `; not in the hierarchy: ${esc(m.unmapped.join(", "))}` : "") +
      `</p><div class="map" data-map="${index}">${m.svg}</div></div>`).join("");
    $("view-map").addEventListener("click", (event) => {
      const g = event.target.closest("g.lm-node");
      const holder = event.target.closest("div.map");
      if (!g || !holder) return;
      const m = D.maps[Number(holder.dataset.map)];
      const id = g.dataset.node;
      let runs = m.runs;
      if (g.dataset.run !== undefined) {
        const r = Number(g.dataset.run);
        runs = g.classList.contains("lm-diff") ? [m.runs[0], m.runs[r]] : [m.runs[r]];
      }
      const groups = new Set(m.nodes[id].map((leaf) => stringId(`${m.key}=${leaf}`)).filter((s) => s >= 0));
      resetFilters();
      state.node = { label: (id || "all") + (runs.length < m.runs.length ? ` (run ${runs.map((r) => r + 1).join(", ")})` : ""),
        task: stringId(m.task), groups, runs: new Set(runs) };
      apply();
      show("samples");
    });
  }

  // -- start -----------------------------------------------------------------------------------------
  $("lm-total").textContent = String(N);
  renderSummary();
  timings.summary = performance.now();
  renderFilters();
  timings.filters = performance.now();
  if (D.comparisons.length) renderAB();
  if (D.maps.length) renderMaps();
  show(views.some(([id]) => id === D.view) ? D.view : "summary");
  apply();
  timings.listed = performance.now();
  statusLine.textContent = `${RUNS.length} run${RUNS.length > 1 ? "s" : ""}, ${N} samples`;
  window.lmReport = { total: N, visible: () => visible.length, state, readyAt: performance.now(), timings };
  document.body.dataset.ready = "1";
})();
