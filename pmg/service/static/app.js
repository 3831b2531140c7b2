// PMG page: plain JavaScript, no build step. Talks to the same app's /v1 API.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { history: [], result: null, request: null };
let apiKey = localStorage.getItem("pmg-api-key") || "";

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json" };
  if (apiKey) headers["X-API-Key"] = apiKey;
  const r = await fetch(path, { ...options, headers });
  if (r.status === 401) {
    apiKey = prompt("This PMG service needs an API key:") || "";
    localStorage.setItem("pmg-api-key", apiKey);
    return api(path, options);
  }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.detail || `HTTP ${r.status}`);
  return body;
}

function renderHistory() {
  const ol = $("history");
  ol.innerHTML = "";
  state.history.forEach((it, i) => {
    const li = document.createElement("li");
    const attrs = Object.entries(it.attributes || {}).map(([k, v]) => `${k}: ${v}`).join(", ");
    li.textContent = `${it.char ? it.char + " " : ""}${it.title}${it.text ? " — " + it.text : ""}${attrs ? " (" + attrs + ")" : ""}`;
    if (it.image) {
      const img = document.createElement("img");
      img.className = "thumb"; img.alt = it.title; img.src = "data:image/png;base64," + it.image;
      li.prepend(img);
    }
    const rm = document.createElement("button");
    rm.textContent = "remove";
    rm.onclick = () => { state.history.splice(i, 1); renderHistory(); };
    li.appendChild(rm);
    ol.appendChild(li);
  });
}

function setScenario(s) {
  $("scenario").value = s;
  $("target-message").hidden = s !== "emoticon";
  $("target-item").hidden = s === "emoticon";
}

function loadUser(u) {
  setScenario(u.scenario);
  state.history = (u.history || []).map((it) => ({ title: it.title, text: it.text || "", attributes: it.attributes || {}, image: it.image }));
  $("conversation").value = (u.conversations || []).slice(-1)[0] || "";
  $("message").value = (u.target && u.target.message) || "";
  const item = (u.target && u.target.item) || {};
  $("target-title").value = item.title || "";
  $("target-text").value = item.text || "";
  state.userId = u.user_id || "user";
  renderHistory();
}

function buildRequest() {
  const scenario = $("scenario").value;
  const target = scenario === "emoticon" ? { message: $("message").value.trim() }
    : { item: { title: $("target-title").value.trim(), text: $("target-text").value.trim() } };
  return {
    user_id: state.userId || "web-user", scenario,
    history: state.history.map(({ title, text, attributes, image }) => (image ? { title, text, attributes, image } : { title, text, attributes })),
    conversations: $("conversation").value.trim() ? [$("conversation").value.trim()] : [],
    target, options: { seed: Number($("seed").value) || 0, alpha: Number($("alpha").value), weighting: $("weighting").value,
                       history_images: $("use-pictures").checked, target_images: $("use-pictures").checked },
  };
}

async function run(request) {
  $("error").textContent = "";
  $("generate").disabled = $("regenerate").disabled = true;
  $("progress").hidden = false; $("progress").value = 0;
  try {
    let job = await api("/v1/jobs", { method: "POST", body: JSON.stringify(request) });
    while (!["done", "failed", "cancelled"].includes(job.status)) {
      $("progress").value = job.progress; $("stage").textContent = job.status + "…";
      await new Promise((r) => setTimeout(r, 250));
      job = await api(`/v1/jobs/${job.id}`);
    }
    if (job.status !== "done") throw new Error(job.error || job.status);
    state.request = request; state.result = job.result;
    $("progress").value = 1; $("stage").textContent = "done";
    showResult();
  } catch (e) {
    $("error").textContent = e.message; $("stage").textContent = "";
  } finally {
    $("generate").disabled = $("regenerate").disabled = false;
  }
}

function zScore(c, a) {
  const lt = Math.log(Math.max(c.d_t, 1e-4));
  return c.d_p === null ? lt : a * Math.log(Math.max(c.d_p, 1e-4)) + (1 - a) * lt;
}

function showResult() {
  const res = state.result;
  $("output").hidden = false;
  $("kw-pref").value = res.keywords.preference.join(", ");
  $("kw-target").value = res.keywords.target.join(", ");
  $("timings").textContent = Object.entries(res.timings).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(" · ");
  $("warnings").innerHTML = res.keywords.warnings.concat(res.manifest.warnings || []).map((w) => `<li>${w.replace(/</g, "&lt;")}</li>`).join("");
  $("pictures").innerHTML = (res.pictures || []).map((p) =>
    `<figure><img class="thumb" alt="${p.role} picture" src="data:image/png;base64,${p.png}"><figcaption>${p.role}</figcaption></figure>`).join("");
  $("pictures-row").hidden = !(res.pictures || []).length;
  rank();
}

function rank() {
  const res = state.result;
  if (!res) return;
  const a = Number($("alpha").value);
  $("alpha-value").textContent = a.toFixed(2);
  const z = res.candidates.map((c) => zScore(c, a));
  const best = z.indexOf(Math.max(...z));
  const grid = $("grid");
  grid.innerHTML = "";
  res.candidates.forEach((c, i) => {
    const div = document.createElement("div");
    div.className = "cand" + (i === best ? " chosen" : "");
    div.dataset.index = i;
    div.innerHTML = `<img alt="candidate ${i}" src="data:image/png;base64,${c.png}">
      <div class="tag">w<sub>p</sub>:w<sub>t</sub> = ${c.w_p}:${c.w_t}${c.noise ? ` · noise ${c.noise}` : ""}${i === best ? " (chosen)" : ""}</div>
      <div>d<sub>p</sub> ${c.d_p === null ? "–" : c.d_p.toFixed(3)} · d<sub>t</sub> ${c.d_t.toFixed(3)}</div>
      <div>z <span class="z">${z[i].toFixed(3)}</span></div>`;
    grid.appendChild(div);
  });
}

async function init() {
  const pal = await api("/v1/palette");
  pal.styles.forEach((s) => { const o = document.createElement("option"); o.value = o.textContent = s; $("style").appendChild(o); });
  pal.emoji.forEach((e) => {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = e.char; b.title = e.title;
    b.onclick = () => { state.history.push({ char: e.char, title: e.title, text: "", attributes: { style: $("style").value } }); renderHistory(); };
    $("palette").appendChild(b);
  });
  $("scenario").onchange = () => setScenario($("scenario").value);
  $("add-item").onclick = () => {
    const title = $("item-title").value.trim();
    if (!title) return;
    const file = $("item-image").files[0];
    const add = (image) => {
      state.history.push({ title, text: $("item-text").value.trim(), attributes: {}, ...(image ? { image } : {}) });
      $("item-title").value = $("item-text").value = ""; $("item-image").value = "";
      renderHistory();
    };
    if (!file) return add(null);
    const reader = new FileReader();  // the picture travels as base64, never as a path
    reader.onload = () => add(String(reader.result).split(",")[1]);
    reader.readAsDataURL(file);
  };
  $("generate").onclick = () => run(buildRequest());
  $("regenerate").onclick = () => {
    const req = { ...(state.request || buildRequest()) };
    const split = (s) => s.split(",").map((x) => x.trim()).filter(Boolean);
    req.keywords = { preference: split($("kw-pref").value), target: split($("kw-target").value) };
    run(req);
  };
  $("alpha").oninput = rank;
  $("download").onclick = () => {
    const blob = new Blob([JSON.stringify(state.result.manifest, null, 2)], { type: "application/json" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob); a.download = "manifest.json"; a.click();
  };
  for (;;) {
    try {
      const h = await fetch("/v1/health").then((r) => r.json());
      $("status").textContent = h.status === "ready" ? "models ready" : `models ${h.status}…`;
      if (h.status === "ready") break;
      if (h.status === "failed") { $("error").textContent = h.detail; return; }
    } catch (e) { $("status").textContent = "server unreachable"; }
    await new Promise((r) => setTimeout(r, 1000));
  }
  const models = await api("/v1/models");  // the slider starts at the generator's own a
  $("alpha").value = models.default_alpha;
  $("alpha-value").textContent = Number(models.default_alpha).toFixed(2);
  const ex = await api("/v1/examples");
  Object.entries(ex).forEach(([name, u]) => {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = name.replace(/_/g, " "); b.dataset.example = name;
    b.onclick = () => loadUser(u);
    $("examples").appendChild(b);
  });
}
init();
