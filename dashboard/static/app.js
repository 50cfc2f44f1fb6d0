// sdfleet dashboard. Everything comes from the gateway's native API with the caller's token,
// which lives in this closure only (never in storage, cookies or URLs).
"use strict";
(function () {
  let token = "";
  const gpus = new Map();   // uuid -> GPU from /v1/gpus and "gpu" events
  const jobs = new Map();   // "ns/name" -> {summary, job, thumbs: Map(index -> blob URL)}
  const $ = (id) => document.getElementById(id);

  function api(path, options) {
    const opts = Object.assign({}, options || {});
    opts.headers = Object.assign({ Authorization: "Bearer " + token }, opts.headers || {});
    return fetch(path, opts);
  }

  async function errorText(resp) {
    try {
      const body = await resp.json();
      return (body.error && body.error.message) || body.message || resp.statusText;
    } catch (e) {
      return resp.status + " " + resp.statusText;
    }
  }

  // Sign-in: the token is checked by opening the event stream with it.
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("token").value.trim();
    $("token").value = "";
    $("login-error").textContent = "";
    connect();
  });

  // Server-Sent Events read through fetch() so that the token travels in a header.
  let retry = 0;
  async function connect() {
    setStatus("Connecting…");
    let resp;
    try {
      resp = await api("/v1/events", { headers: { Accept: "text/event-stream" } });
    } catch (e) {
      return reconnect("Connection lost: " + e.message);
    }
    if (resp.status === 401 || resp.status === 403) {
      const msg = await errorText(resp);
      token = "";
      $("login").hidden = false;
      $("login-error").textContent = msg;
      return setStatus("Not connected");
    }
    if (!resp.ok) {
      return reconnect("Event stream: " + (await errorText(resp)));
    }
    $("login").hidden = true;
    for (const id of ["board-section", "submit-section", "jobs-section"]) $(id).hidden = false;
    setStatus("Live");
    retry = 0;
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (e) {
      return reconnect("Connection lost: " + e.message);
    }
    reconnect("Stream ended");
  }

  function reconnect(why) {
    if (!token) return;
    retry = Math.min(retry + 1, 5);
    setStatus(why + "; reconnecting…");
    setTimeout(connect, 500 * retry);
  }

  function setStatus(text) { $("connection").textContent = text; }

  function dispatch(block) {
    let type = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) type = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    if (data.length === 0) return;
    const payload = JSON.parse(data.join("\n"));
    if (type === "gpu") {
      gpus.set(payload.uuid, payload);
      renderGPU(payload);
    } else if (type === "job") {
      jobChanged(payload);
    } else if (type === "overflow") {
      setStatus(payload.message);
    }
  }

  // GPU board.
  function gpuCard(uuid) {
    let card = document.querySelector('.gpu[data-uuid="' + CSS.escape(uuid) + '"]');
    if (!card) {
      card = $("gpu-card").content.firstElementChild.cloneNode(true);
      card.dataset.uuid = uuid;
      const board = $("board");
      const g = gpus.get(uuid);
      const key = g.node + "/" + String(g.index).padStart(4, "0");
      card.dataset.sort = key;
      const after = Array.from(board.children).find((c) => c.dataset.sort > key);
      board.insertBefore(card, after || null);
      $("board-empty").hidden = true;
    }
    return card;
  }

  function renderGPU(g) {
    const card = gpuCard(g.uuid);
    const name = g.node + " · GPU " + g.index;
    card.dataset.health = g.health;
    card.setAttribute("aria-label", name + ", " + g.health);
    card.querySelector(".gpu-name").textContent = name;
    card.querySelector(".product").textContent = (g.product || "GPU") + (g.simulated ? " (simulated)" : "") + " · " + g.uuid;
    card.querySelector(".badge").textContent = g.health;
    card.querySelector(".reason").textContent = g.health === "Healthy" ? "" : (g.healthReason || "");
    const meter = card.querySelector(".memory");
    meter.value = g.memoryUsedPercent;
    meter.high = 85;
    meter.setAttribute("aria-label", "Memory used " + g.memoryUsedPercent + " percent");
    card.querySelector(".memory-text").textContent =
      gib(g.memoryUsedBytes) + " / " + gib(g.memoryTotalBytes) + " GiB (" + g.memoryUsedPercent + "%)";
    // sdfleet's share: the memory reserved for its images starting or running on the GPU.
    const reserved = card.querySelector(".reserved");
    reserved.value = g.reservedPercent || 0;
    reserved.setAttribute("aria-label", "Memory reserved by sdfleet " + (g.reservedPercent || 0) + " percent");
    card.querySelector(".reserved-text").textContent = g.reservedImages
      ? gib(g.reservedBytes) + " GiB reserved by sdfleet for " + g.reservedImages +
        (g.reservedImages === 1 ? " image" : " images") + " (" + g.reservedPercent + "%)"
      : "none reserved by sdfleet";
    card.querySelector(".util").textContent = g.utilizationPercent + "%";
    card.querySelector(".temp").textContent = g.temperatureCelsius + " °C";
    card.querySelector(".speed").textContent = g.secondsPerMegapixelStep
      ? g.secondsPerMegapixelStep + " s per megapixel-step (" + (g.speedImages || 0) + " images)" : "not learned yet";
    renderRunning(g.uuid);
  }

  function gib(bytes) { return (bytes / (1 << 30)).toFixed(1); }

  // Images of the caller's jobs running on one GPU.
  function renderRunning(uuid) {
    const card = document.querySelector('.gpu[data-uuid="' + CSS.escape(uuid) + '"]');
    if (!card) return;
    const here = [];
    for (const entry of jobs.values()) {
      if (!entry.job) continue;
      for (const img of entry.job.status.images || []) {
        if (img.gpuUUID === uuid && img.phase === "Running") here.push(entry.job.metadata.name + " #" + img.index);
      }
    }
    card.querySelector(".running").textContent = here.length ? here.join(", ") : "none";
  }

  // Jobs: the event carries the counts; the job itself (where each image ran) is read on
  // every change, one read at a time per job.
  function jobChanged(summary) {
    const key = summary.namespace + "/" + summary.name;
    let entry = jobs.get(key);
    if (!entry) {
      entry = { summary, job: null, thumbs: new Map(), loading: false, again: false };
      jobs.set(key, entry);
    }
    entry.summary = summary;
    renderJob(entry);
    loadJob(entry);
  }

  async function loadJob(entry) {
    if (entry.loading) { entry.again = true; return; }
    entry.loading = true;
    try {
      do {
        entry.again = false;
        const s = entry.summary;
        const resp = await api("/v1/jobs/" + encodeURIComponent(s.namespace) + "/" + encodeURIComponent(s.name));
        if (resp.ok) {
          entry.job = await resp.json();
          renderJob(entry);
          for (const g of gpus.values()) renderRunning(g.uuid);
          await loadThumbnails(entry);
        }
      } while (entry.again);
    } finally {
      entry.loading = false;
    }
  }

  function jobCard(entry) {
    const key = entry.summary.namespace + "/" + entry.summary.name;
    let card = document.querySelector('.job[data-key="' + CSS.escape(key) + '"]');
    if (!card) {
      card = $("job-card").content.firstElementChild.cloneNode(true);
      card.dataset.key = key;
      $("jobs").prepend(card);
      $("jobs-empty").hidden = true;
    }
    return card;
  }

  function renderJob(entry) {
    const s = entry.summary;
    const card = jobCard(entry);
    card.dataset.phase = s.phase || "Pending";
    card.querySelector(".job-name").textContent = s.name;
    const prompt = entry.job ? entry.job.spec.prompt : "";
    card.querySelector(".phase").textContent = (s.phase || "Pending") + (prompt ? " · “" + prompt + "”" : "");
    const waiting = Math.max(0, s.images - s.succeeded - s.running - s.failed);
    const bar = card.querySelector(".progress");
    bar.max = s.images || 1;
    bar.value = s.succeeded;
    bar.setAttribute("aria-label", s.succeeded + " of " + s.images + " images done");
    card.querySelector(".counts").textContent = s.succeeded + " succeeded · " + s.running + " running · " +
      waiting + " waiting · " + s.failed + " failed (of " + s.images + ")";
    if (!entry.job) return;
    const where = card.querySelector(".where");
    where.replaceChildren();
    for (const img of entry.job.status.images || []) {
      const li = document.createElement("li");
      li.textContent = "Image " + img.index + ": " + img.phase + placeOf(img);
      where.append(li);
    }
  }

  function placeOf(img) {
    if (!img.node) return "";
    if (img.gpuUUID) {
      return " on " + img.node + " GPU " + (img.gpuIndex !== undefined ? img.gpuIndex : "?") + " (" + img.gpuUUID + ")";
    }
    return " on " + img.node + " (" + (img.device || "cpu") + ")";
  }

  // Thumbnails: each finished image is fetched once with the token and shown as a blob URL.
  async function loadThumbnails(entry) {
    const job = entry.job;
    const gallery = jobCard(entry).querySelector(".gallery");
    for (const img of job.status.images || []) {
      if (img.phase !== "Succeeded" || entry.thumbs.has(img.index)) continue;
      const resp = await api("/v1/jobs/" + encodeURIComponent(job.metadata.namespace) + "/" +
        encodeURIComponent(job.metadata.name) + "/images/" + img.index + ".png");
      if (!resp.ok) continue;
      const bytes = await resp.arrayBuffer();
      const url = URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
      const params = pngText(bytes).parameters || "";
      entry.thumbs.set(img.index, url);
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      const label = job.metadata.name + " image " + img.index + placeOf(img);
      button.setAttribute("aria-label", "Open " + label);
      const thumb = document.createElement("img");
      thumb.src = url;
      thumb.alt = label;
      thumb.className = "thumb";
      button.append(thumb);
      button.addEventListener("click", () => openViewer(label, url, params));
      li.append(button);
      gallery.append(li);
    }
  }

  function openViewer(title, url, params) {
    $("viewer-title").textContent = title;
    $("viewer-image").src = url;
    $("viewer-image").alt = title;
    $("viewer-parameters").textContent = params || "(this PNG has no parameters chunk)";
    $("viewer").showModal();
    $("viewer-close").focus();
  }

  // pngText reads a PNG's tEXt (Latin-1) and uncompressed iTXt (UTF-8) chunks.
  function pngText(buffer) {
    const out = {};
    const view = new DataView(buffer);
    const bytes = new Uint8Array(buffer);
    let at = 8;
    while (at + 8 <= bytes.length) {
      const length = view.getUint32(at);
      const kind = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
      const body = bytes.subarray(at + 8, at + 8 + length);
      if (kind === "tEXt" || kind === "iTXt") {
        const nul = body.indexOf(0);
        const keyword = new TextDecoder("latin1").decode(body.subarray(0, nul));
        if (kind === "tEXt") {
          out[keyword] = new TextDecoder("latin1").decode(body.subarray(nul + 1));
        } else if (body[nul + 1] === 0) {
          let p = body.indexOf(0, nul + 3); // language tag
          p = body.indexOf(0, p + 1);       // translated keyword
          out[keyword] = new TextDecoder("utf-8").decode(body.subarray(p + 1));
        }
      }
      if (kind === "IEND") break;
      at += 12 + length;
    }
    return out;
  }

  // Submit form.
  $("job-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target.elements;
    const result = $("submit-result");
    if (!f.prompt.value.trim()) {
      result.textContent = "Prompt: write what the image should show.";
      f.prompt.focus();
      return;
    }
    const [width, height] = f.size.value.split("x").map(Number);
    const body = {
      prompt: f.prompt.value, images: Number(f.images.value), width, height,
      steps: Number(f.steps.value), sampler: f.sampler.value, placement: { policy: f.policy.value },
    };
    if (f.negativePrompt.value) body.negativePrompt = f.negativePrompt.value;
    if (f.seed.value !== "") body.seed = Number(f.seed.value);
    result.textContent = "Submitting…";
    const resp = await api("/v1/jobs", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (!resp.ok) {
      result.textContent = "Not submitted: " + (await errorText(resp));
      return;
    }
    const created = await resp.json();
    result.textContent = "Submitted " + created.namespace + "/" + created.name + ".";
    // The stream may have announced the job already; otherwise show it until it does.
    if (!jobs.has(created.namespace + "/" + created.name)) {
      jobChanged({ namespace: created.namespace, name: created.name, phase: "Pending", images: body.images,
        pending: body.images, running: 0, succeeded: 0, failed: 0 });
    }
  });
})();
