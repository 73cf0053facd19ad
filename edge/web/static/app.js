// face-edge web page: five views over the JSON API (see edge/web/server.py). No framework, no build step.
"use strict";

const $ = (sel) => document.querySelector(sel);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
};

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body instanceof FormData || body instanceof Blob) init.body = body;
  else if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
  const response = await fetch(path, init);
  if (response.status === 401) { location.reload(); throw new Error("the access token is needed"); }
  const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok && !("ok" in data)) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

// ---- views ---------------------------------------------------------------------------------------
const views = ["live", "people", "events", "photo", "status"];
let current = null;
let timer = null;

function show(view) {
  if (!views.includes(view)) view = "live";
  current = view;
  for (const v of views) $(`#view-${v}`).classList.toggle("active", v === view);
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === view);
  // The live stream runs only while its view is shown: the device encodes frames only while someone watches.
  const img = $("#live-img");
  if (view === "live") img.src = "/api/live.mjpg?t=" + Date.now(); else img.removeAttribute("src");
  clearInterval(timer);
  const refresh = { live: refreshInView, people: refreshPeople, events: refreshEvents, status: refreshStatus }[view];
  if (refresh) { refresh(); timer = setInterval(refresh, view === "people" ? 10000 : 2000); }
}

window.addEventListener("hashchange", () => show(location.hash.slice(1)));

// ---- header pill and live facts ------------------------------------------------------------------
async function refreshPill() {
  try {
    const s = await api("GET", "/api/status");
    const loop = s.loop;
    const pill = $("#pill");
    if (!loop) { pill.textContent = "no camera loop"; pill.className = "pill"; return s; }
    pill.textContent = `${loop.camera} · ${loop.fps ?? "–"} fps · ${loop.source ?? ""}`;
    pill.className = "pill " + (loop.camera === "lost" ? "lost" : "ok");
    return s;
  } catch (e) { $("#pill").textContent = "offline"; $("#pill").className = "pill lost"; }
}

async function refreshInView() {
  const s = await refreshPill();
  const facts = $("#in-view");
  facts.replaceChildren();
  if (!s || !s.loop) { $("#live-note").textContent = "This face-edge runs no camera loop (face-edge serve --no-camera)."; return; }
  $("#live-note").textContent = s.loop.camera === "lost" ? "The camera is lost; face-edge is reconnecting." : "";
  const st = s.integrations || {};
  const last = st.last_seen ? `${st.last_seen.name} at ${new Date(st.last_seen.t * 1000).toLocaleTimeString()}` : "nobody yet";
  for (const [k, v] of [["Faces in view", st.faces ?? 0], ["People in view", (st.people || []).join(", ") || "–"],
                        ["Last seen", last]]) facts.append(el("dt", {}, k), el("dd", {}, v));
}

// ---- people --------------------------------------------------------------------------------------
async function refreshPeople() {
  const tbody = $("#people-table tbody");
  try {
    const data = await api("GET", "/api/people");
    $("#threshold").textContent = `${data.people.length} enrolled (model ${data.model}); unknown above ${data.distance} distance ${data.threshold_words}`;
    tbody.replaceChildren(...data.people.map((p) => el("tr", {},
      el("td", { className: "person-name" }, p.name), el("td", { className: "samples" }, p.samples),
      el("td", {}, (p.enrolled || "").replace("T", " ").replace("+00:00", " UTC")),
      el("td", {}, el("button", { onclick: () => rename(p.name) }, "Rename"), " ",
         el("button", { className: "danger", onclick: () => remove(p.name) }, "Remove")))));
    if (!data.people.length) tbody.append(el("tr", {}, el("td", { colSpan: 4, className: "note" }, "Nobody is enrolled yet.")));
  } catch (e) { $("#threshold").textContent = e.message; tbody.replaceChildren(); }
}

function say(box, text, bad = false) {
  box.hidden = false; box.textContent = text; box.classList.toggle("bad", bad);
}

async function rename(name) {
  const to = prompt(`New name for ${name}:`, name);
  if (!to || to === name) return;
  try { say($("#enroll-result"), (await api("POST", `/api/people/${encodeURIComponent(name)}/rename`, { name: to })).message); }
  catch (e) { say($("#enroll-result"), e.message, true); }
  refreshPeople();
}

async function remove(name) {
  if (!confirm(`Remove ${name} and all their samples?`)) return;
  try { say($("#enroll-result"), (await api("DELETE", `/api/people/${encodeURIComponent(name)}`)).message); }
  catch (e) { say($("#enroll-result"), e.message, true); }
  refreshPeople();
}

$("#enroll-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = $("#enroll-button");
  button.disabled = true;
  say($("#enroll-result"), "checking the photos…");
  try {
    const r = await api("POST", "/api/people", new FormData(event.target));
    const lines = (r.lines || []).map((l) => "  " + l);
    for (const w of r.warnings || []) lines.push("  warning: " + w);
    lines.push(r.ok ? r.message : "error: " + r.error);
    say($("#enroll-result"), lines.join("\n"), !r.ok);
    if (r.ok) event.target.reset();
  } catch (e) { say($("#enroll-result"), "error: " + e.message, true); }
  button.disabled = false;
  refreshPeople();
});

// ---- events --------------------------------------------------------------------------------------
function describe(e) {
  const parts = [];
  if (e.age !== undefined) parts.push(`age ${e.age_group || e.age}`);
  for (const k of ["gender", "emotion"]) if (e[k]) parts.push(e[k]);
  if (e.attributes && e.attributes.length) parts.push(e.attributes.join(", "));
  if (e.seconds !== undefined) parts.push(`${e.seconds} s in view`);
  return parts.join(" · ");
}

async function refreshEvents() {
  try {
    const data = await api("GET", "/api/events");
    $("#events-list").replaceChildren(...data.events.map((e) => {
      const who = e.name ? `${e.name}${e.distance != null ? ` (${e.distance.toFixed(2)})` : ""}` : "unknown";
      const fix = e.can_mark_wrong
        ? el("button", { className: "fix", onclick: () => markWrong(e.id, e.name) }, `Not ${e.name}`)
        : el("span", { className: "fix note" }, e.corrected || "");
      return el("li", { id: `event-${e.id}` },
        e.thumbnail ? el("img", { src: e.thumbnail, alt: `face of track ${e.track}`, loading: "lazy" }) : el("div", { className: "noface" }),
        el("div", {}, el("span", { className: `badge ${e.event}` }, e.event), " ", el("span", { className: "who" }, who),
           el("div", { className: "meta" }, `${new Date(e.t * 1000).toLocaleTimeString()} · track ${e.track} · ${describe(e)}`)),
        fix);
    }));
    if (!data.events.length) $("#events-list").append(el("li", { className: "note" }, "No event yet: events appear when a face comes into view."));
  } catch (e) { say($("#event-message"), e.message, true); }
}

async function markWrong(id, name) {
  if (!confirm(`This was not ${name}? The samples of ${name} that matched this face will stop counting.`)) return;
  try { say($("#event-message"), (await api("POST", `/api/events/${id}/wrong`)).message); }
  catch (e) { say($("#event-message"), e.message, true); }
  refreshEvents();
}

// ---- photo ---------------------------------------------------------------------------------------
$("#photo-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("#photo-file").files[0];
  if (!file) return;
  $("#photo-error").hidden = true;
  try {
    const r = await api("POST", "/api/recognize", file);
    if (r.error) throw new Error(r.error);
    const image = await createImageBitmap(file, { imageOrientation: "from-image" });
    const canvas = $("#photo-canvas");
    canvas.width = r.width; canvas.height = r.height; canvas.hidden = false;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(image, 0, 0, r.width, r.height);
    ctx.lineWidth = Math.max(2, r.width / 300);
    ctx.font = `${Math.max(14, r.width / 40)}px sans-serif`;
    for (const f of r.faces) {
      const [x, y, w, h] = f.box;
      ctx.strokeStyle = ctx.fillStyle = f.name ? "#5c5" : "#f93";
      ctx.strokeRect(x, y, w, h);
      ctx.fillText(f.name || "unknown", x, Math.max(16, y - 6));
    }
    const tbody = $("#photo-table tbody");
    tbody.replaceChildren(...r.faces.map((f) => el("tr", {}, el("td", {}, f.box.join(", ")), el("td", {}, f.name || "unknown"),
      el("td", {}, f.distance ?? "–"), el("td", {}, f.age_group || f.age || "–"), el("td", {}, f.gender || "–"),
      el("td", {}, f.emotion || "–"), el("td", {}, (f.attributes || []).join(", ")))));
    if (!r.faces.length) tbody.append(el("tr", {}, el("td", { colSpan: 7, className: "note" }, "No face found.")));
    $("#photo-table").hidden = false;
  } catch (e) { say($("#photo-error"), e.message, true); }
});

// ---- status --------------------------------------------------------------------------------------
async function refreshStatus() {
  const s = await refreshPill();
  if (!s) return;
  const rows = [["face-edge", `${s.version} (pid ${s.pid}, up ${Math.round(s.uptime_s)} s)`],
                ["Memory", `${s.rss_mb ?? "?"} MB resident, peak ${s.peak_rss_mb ?? "?"} MB`]];
  if (s.loop) {
    rows.push(["Frames per second", s.loop.fps ?? "–"], ["Frames", s.loop.frames], ["Camera", `${s.loop.camera} (${s.loop.source})`],
              ["Runtime", s.loop.runtime], ["Recognition", s.loop.recognition ? "on" : "off (nobody enrolled or no embedding model)"]);
    for (const [name, m] of Object.entries(s.loop.models)) rows.push([`Model ${name}`, `${m.task} v${m.version}`]);
    for (const err of s.loop.model_errors) rows.push(["Model error", err]);
  } else rows.push(["Camera loop", "none (face-edge serve --no-camera)"]);
  const mq = s.integrations && s.integrations.mqtt;
  if (mq) rows.push(["MQTT", `${mq.connected ? "connected to" : "not connected to"} ${mq.broker}; ${mq.queued} queued, ` +
                     `${mq.dropped} dropped, ${mq.sent} sent${mq.last_error ? "; " + mq.last_error : ""}`]);
  rows.push(["Live view", `${s.web.live_viewers} watching, at most ${s.web.live_fps_cap} frames/s`]);
  $("#status-table tbody").replaceChildren(...rows.map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, v))));
}

show(location.hash.slice(1) || "live");
setInterval(refreshPill, 5000);
