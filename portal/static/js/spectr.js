// Spectr's small amount of page behaviour: CSRF for htmx, live operation logs and live
// application status over SSE (container logs: logviewer.js).
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]');
  document.addEventListener("htmx:configRequest", (event) => {
    if (csrf) event.detail.headers["X-CSRFToken"] = csrf.content;
  });

  // A browser on the Docker host sees its network interfaces change whenever a container
  // starts or stops, and drops the requests in flight (Chromium: ERR_NETWORK_CHANGED). The
  // editors' checks and previews would then keep showing the answer for the text before: a
  // request that changes nothing (a GET, or one marked data-safe-to-repeat) is sent again, with
  // what the field holds by then, twice at most.
  const REPEATS = 2;
  document.addEventListener("htmx:sendError", (event) => {
    const element = event.detail.elt;
    const config = event.detail.requestConfig;
    if (!element || !config) return;
    const safe = config.verb === "get" || element.hasAttribute("data-safe-to-repeat");
    const repeat = Number((config.headers || {})["X-Spectr-Repeat"] || 0) + 1;
    if (!safe || repeat > REPEATS) return;
    setTimeout(() => {
      window.htmx.ajax(config.verb, config.path, {
        source: element, target: config.target, headers: { "X-Spectr-Repeat": String(repeat) },
      });
    }, 500 * repeat);
  });

  // A form the person sent wins over the reload when an operation ends: reloading then would
  // cancel the form's navigation (a command's output lost while the command still ran).
  let sending = false;
  document.addEventListener("submit", (event) => {
    setTimeout(() => { if (!event.defaultPrevented) sending = true; }, 0); // after every handler
  });
  window.addEventListener("pageshow", () => { sending = false; }); // back from the cache

  function followOperation(section) {
    if (section.dataset.final === "true") return;
    const log = document.getElementById("op-log");
    const url = section.dataset.logUrl + "?follow=1&after=" + section.dataset.lastLine;
    const source = new EventSource(url);
    source.addEventListener("line", (event) => {
      const line = JSON.parse(event.data);
      const span = document.createElement("span");
      span.className = "log-" + line.level;
      span.dataset.id = line.id;
      span.textContent = line.at.substring(11, 23) + "  " + line.message + "\n";
      log.appendChild(span);
      log.scrollTop = log.scrollHeight;
    });
    const showState = (event) => {
      const state = JSON.parse(event.data);
      document.getElementById("op-state").innerHTML =
        '<span class="badge state-' + state.state + '">' + state.state + "</span>";
      document.querySelector("#op-progress .progress > div").style.width = (state.progress * 100) + "%";
      const message = document.getElementById("op-progress-message");
      if (message) message.textContent = state.progress_message || "";
      const attempts = document.getElementById("op-attempts");
      if (attempts && state.attempts !== undefined) {
        attempts.textContent = state.attempts + " of " + state.max_attempts;
      }
      document.getElementById("op-error").textContent = state.error || "";
      return state;
    };
    source.addEventListener("state", showState);
    source.addEventListener("end", (event) => {
      showState(event);
      source.close();
      // A finished operation cannot be cancelled: the button goes with it.
      const cancel = document.getElementById("op-cancel");
      if (cancel) cancel.remove();
      if (section.dataset.reloadWhenDone === "true" && !sending) window.location.reload();
    });
  }

  // A list's rows in the server's order, keyed by data-key: rows that went are removed, new
  // ones are put where the server lists them, changed ones replaced (a ticked box stays
  // ticked). The "nothing here" row (data-empty, from the list's template[data-empty-row]) and
  // what only makes sense with rows (data-shown-with="<tbody id>") follow; a sorted, searched,
  // paged table is ordered again.
  function syncRows(body, listed) {
    const have = new Map();
    body.querySelectorAll(":scope > tr[data-key]").forEach((row) => { have.set(row.dataset.key, row); });
    const wanted = new Set(listed.map(([key]) => key));
    let changed = false;
    have.forEach((row, key) => { if (!wanted.has(key)) { row.remove(); changed = true; } });
    const make = (html) => {
      const template = document.createElement("template");
      template.innerHTML = html.trim();
      return template.content.firstElementChild;
    };
    let previous = null;
    listed.forEach(([key, html]) => {
      let row = have.get(key);
      if (!row || row.dataset.html !== html) {
        const fresh = make(html);
        fresh.dataset.html = html;
        if (!row) {
          row = fresh;
          changed = true;
        } else if (row.dataset.html === undefined && row.innerHTML === fresh.innerHTML) {
          row.dataset.html = html; // the row the page came with, as the server lists it now
        } else {
          const ticked = Array.from(row.querySelectorAll("input[type=checkbox]:checked")).map((box) => box.value);
          fresh.querySelectorAll("input[type=checkbox]").forEach((box) => { box.checked = ticked.includes(box.value); });
          fresh.hidden = row.hidden;
          row.replaceWith(fresh);
          row = fresh;
        }
      }
      const next = previous ? previous.nextElementSibling : body.firstElementChild;
      if (next !== row) body.insertBefore(row, next);
      previous = row;
    });
    const count = listed.length;
    const empty = body.querySelector(":scope > tr[data-empty]");
    const emptyRow = body.querySelector(":scope > template[data-empty-row]");
    if (count > 0 && empty) empty.remove();
    if (count === 0 && !empty && emptyRow) body.appendChild(emptyRow.content.firstElementChild.cloneNode(true));
    document.querySelectorAll('[data-shown-with="' + body.id + '"]').forEach((element) => { element.hidden = count === 0; });
    const table = body.closest("table");
    if (table && table.spectrRefresh) table.spectrRefresh();
    if (changed) body.dispatchEvent(new Event("change", { bubbles: true }));
  }

  // A page's live parts, replaced each time the server sends them anew (the health sweep saw
  // containers change): an application's status, ports and actions; a list's status cells and
  // rows. When the list's tables themselves change (its first application on a host), its
  // region is replaced whole. The browser reconnects by itself.
  function followAppStatus(section) {
    const source = new EventSource(section.dataset.liveUrl);
    const shown = {};
    source.addEventListener("parts", (event) => {
      const data = JSON.parse(event.data);
      const region = data.region ? document.getElementById(data.region.id) : null;
      if (region && data.rows) {
        const onPage = Array.from(region.querySelectorAll("tbody[data-live-rows]")).map((body) => body.id).sort();
        const sent = Object.keys(data.rows).sort();
        if (onPage.join(" ") !== sent.join(" ")) {
          region.innerHTML = data.region.html;
          region.querySelectorAll("table[data-table]").forEach((table) => { window.spectrTables.enhance(table); });
          Object.keys(shown).forEach((id) => { delete shown[id]; });
        }
      }
      Object.entries(data.parts).forEach(([id, html]) => {
        const element = document.getElementById(id);
        if (element && shown[id] !== html) element.innerHTML = html;
        shown[id] = html;
      });
      Object.entries(data.rows || {}).forEach(([id, listed]) => {
        const body = document.getElementById(id);
        if (body) syncRows(body, listed);
      });
    });
    source.addEventListener("end", () => source.close());
  }

  // Model files go to the API as the raw request body (no multipart copy on the server),
  // with the browser's upload progress shown; the import then continues as an operation.
  function uploadModel(form) {
    const file = form.querySelector('input[type="file"]').files[0];
    const name = form.dataset.name || form.querySelector('input[name="name"]').value.trim();
    const status = form.querySelector(".upload-status");
    const bar = form.querySelector(".progress");
    if (!file || !name) return;
    const lower = file.name.toLowerCase();
    const type = /\.(tgz|tar\.gz)$/.test(lower) ? "application/gzip"
      : lower.endsWith(".tar") ? "application/x-tar" : "application/octet-stream";
    const query = new URLSearchParams({ name: name, filename: file.name });
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/models/uploads?" + query.toString());
    xhr.setRequestHeader("Content-Type", type);
    if (csrf) xhr.setRequestHeader("X-CSRFToken", csrf.content);
    bar.hidden = false;
    xhr.upload.onprogress = (event) => {
      if (!event.lengthComputable) return;
      bar.firstElementChild.style.width = (100 * event.loaded / event.total) + "%";
      status.textContent = "Uploading " + Math.round(100 * event.loaded / event.total) + "%";
    };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (error) { body = {}; }
      if (xhr.status === 202) {
        status.textContent = "Uploaded; importing…";
        window.location.href = "/operations/" + body.id;
      } else {
        status.textContent = body.message || ("Upload refused (" + xhr.status + ")");
        status.classList.add("error");
      }
    };
    xhr.onerror = () => { status.textContent = "The upload broke off; try again."; };
    form.querySelector("button").disabled = true;
    xhr.onloadend = () => { form.querySelector("button").disabled = false; };
    xhr.send(file);
  }

  // The model deploy form offers the GPUs of the host chosen, and only those.
  function followHostGpus(form) {
    const select = form.querySelector('select[name="host_id"]');
    const show = () => {
      form.querySelectorAll("[data-gpus-of]").forEach((group) => {
        const chosen = group.dataset.gpusOf === select.value;
        group.hidden = !chosen;
        group.querySelectorAll("input").forEach((box) => { box.disabled = !chosen; });
      });
    };
    select.addEventListener("change", show);
    show();
  }

  // A link to a closed <details> (#new-app) opens it, rather than scrolling to its summary.
  const openTarget = (hash) => {
    const target = hash.length > 1 ? document.getElementById(hash.slice(1)) : null;
    if (target && target.tagName === "DETAILS") target.open = true;
  };
  window.addEventListener("hashchange", () => openTarget(window.location.hash));

  // These scripts are deferred, so a slow page (a form's answer on a busy portal) can be typed
  // into before they run. htmx then takes the text it finds as the unchanged one and an
  // "input changed" trigger never fires for it: the field's check, preview or suggestions would
  // stay those of the text the server sent. Send the field's request once, as its trigger would
  // (a field whose trigger includes `load` sends it by itself).
  const FIELDS_CHECKED_ON_CHANGE = "input[hx-trigger*=changed], textarea[hx-trigger*=changed]";
  const checkTypedEarly = (field) => {
    const trigger = field.getAttribute("hx-trigger");
    if (field.value === field.defaultValue || /(^|,)\s*load\b/.test(trigger)) return;
    const verb = ["get", "post"].find((name) => field.hasAttribute(`hx-${name}`));
    if (verb) window.htmx.ajax(verb, field.getAttribute(`hx-${verb}`), { source: field });
  };

  document.addEventListener("DOMContentLoaded", () => {
    openTarget(window.location.hash);
    document.querySelectorAll(FIELDS_CHECKED_ON_CHANGE).forEach(checkTypedEarly);
    document.querySelectorAll("form[data-host-gpus]").forEach(followHostGpus);
    document.querySelectorAll("[data-live-url]").forEach(followAppStatus);
    const section = document.getElementById("operation");
    if (section) followOperation(section);
    document.querySelectorAll("form[data-model-upload]").forEach((form) => {
      form.addEventListener("submit", (event) => { event.preventDefault(); uploadModel(form); });
    });
  });
})();
