// A host's Docker resources: the containers list's bulk actions, and a container's live stats.
(function () {
  "use strict";

  // Bulk actions name what they will do to which containers before anything is sent.
  function bulkActions(form) {
    const boxes = () => Array.from(form.querySelectorAll('input[name="container_id"]'));
    const count = form.querySelector("#bulk-count");
    const all = form.querySelector("#select-all");
    const show = () => {
      const chosen = boxes().filter((box) => box.checked).length;
      if (count) count.textContent = chosen ? chosen + " selected" : "none selected";
      if (all) all.checked = chosen > 0 && chosen === boxes().length;
    };
    form.addEventListener("change", (event) => {
      if (event.target === all) boxes().forEach((box) => { box.checked = all.checked; });
      show();
    });
    form.addEventListener("submit", (event) => {
      const action = event.submitter ? event.submitter.value : "";
      const names = boxes().filter((box) => box.checked).map((box) => box.dataset.name);
      if (!names.length) {
        event.preventDefault();
        if (count) count.textContent = "Select at least one container first.";
        return;
      }
      const listed = names.slice(0, 8).join(", ") + (names.length > 8 ? " and " + (names.length - 8) + " more" : "");
      let question = action.charAt(0).toUpperCase() + action.slice(1) + " " + names.length + " container(s): " + listed + "?";
      if (action === "remove") question += " Running ones are killed first.";
      if (!window.confirm(question)) event.preventDefault();
    });
    show();
    form.dataset.ready = "1"; // confirm.js held presses back until now
  }

  // Actions that make Docker add or remove network interfaces (a container starts or stops, a
  // network goes) are sent with fetch: a browser on the Docker host itself sees the interfaces
  // change and drops requests in flight (Chromium: ERR_NETWORK_CHANGED), which would leave an
  // error page whether or not the action was done. Start and stop are sent once more after such a
  // drop (repeating them changes nothing); otherwise the page is reloaded and says so.
  const INTERRUPTED = "spectr-engine-answer-lost";
  const REPEATABLE = ["start", "stop"];
  const pause = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });
  async function send(form, body) {
    // The answer is a redirect carrying the outcome as a one-time message: not followed here,
    // so that the next page shows it.
    // getAttribute: the bulk form's buttons are named "action", which hides form.action.
    await fetch(form.getAttribute("action"), { method: "POST", body: body, credentials: "same-origin", redirect: "manual" });
  }
  function engineActions() {
    document.addEventListener("submit", async (event) => {
      const form = event.target.closest("form[data-engine-action]");
      if (!form || event.defaultPrevented) return; // refused at its confirmation
      event.preventDefault();
      const body = new FormData(form, event.submitter || undefined);
      form.querySelectorAll("button").forEach((button) => { button.disabled = true; });
      const next = body.get("next") || window.location.pathname + window.location.search;
      try {
        await send(form, body);
      } catch (error) {
        let lost = true;
        if (REPEATABLE.includes(body.get("action"))) {
          await pause(1500);
          lost = await send(form, body).then(() => false, () => true);
        }
        if (lost) window.sessionStorage.setItem(INTERRUPTED, "1");
      }
      window.location.assign(next);
    });
    if (window.sessionStorage.getItem(INTERRUPTED)) {
      window.sessionStorage.removeItem(INTERRUPTED);
      const notice = document.createElement("div");
      notice.className = "flash";
      notice.id = "answer-lost";
      notice.setAttribute("role", "status");
      notice.textContent = "The answer to that action was lost: Docker changed this machine's network " +
        "interfaces while it ran (the browser runs on the Docker host). The page shows the state now.";
      document.querySelector("main").prepend(notice);
    }
  }

  const HISTORY = 40; // samples: two minutes at one every 3 s
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  function bytes(value) {
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return value.toFixed(value >= 100 || unit === 0 ? 0 : 1) + " " + units[unit];
  }

  // The newest sample is at the right edge; the first few spread over at least ten slots, so a
  // new chart is readable before its history fills up.
  function draw(line, values, top, area) {
    const slots = Math.max(values.length, 10);
    const step = 300 / (slots - 1);
    const start = slots - values.length;
    const points = values.map((value, index) =>
      ((start + index) * step).toFixed(1) + "," + (78 - (value / top) * 72).toFixed(1));
    line.setAttribute("points", points.join(" "));
    if (area && points.length) {
      area.setAttribute("points", (start * step).toFixed(1) + ",79 " + points.join(" ") + " 300,79");
    }
  }

  // Samples come from the engine every few seconds while the tab is open and visible.
  function liveStats(section) {
    const url = section.dataset.statsUrl;
    const interval = Number(section.dataset.intervalMs) || 3000;
    const status = section.querySelector("#stats-status");
    const series = { cpu: [], memory: [], rx: [], tx: [] };
    let previous = null;
    let timer = null;
    let busy = false; // one request at a time, whatever wakes the loop

    const render = (sample) => {
      series.cpu.push(sample.cpu_percent);
      series.memory.push(sample.memory_usage_bytes || 0);
      const at = Date.parse(sample.at);
      if (previous && at > previous.at) {
        const seconds = (at - previous.at) / 1000;
        series.rx.push(Math.max(0, (sample.network_rx_bytes - previous.rx) / seconds));
        series.tx.push(Math.max(0, (sample.network_tx_bytes - previous.tx) / seconds));
      }
      previous = { at: at, rx: sample.network_rx_bytes || 0, tx: sample.network_tx_bytes || 0 };
      Object.values(series).forEach((values) => { if (values.length > HISTORY) values.shift(); });
      const lines = (key) => section.querySelectorAll("#chart-" + key + " polyline");
      const area = (key) => section.querySelector("#chart-" + key + " polygon");
      draw(lines("cpu")[0], series.cpu, Math.max(5, ...series.cpu) * 1.15, area("cpu"));
      draw(lines("memory")[0], series.memory, Math.max(1, ...series.memory) * 1.15, area("memory"));
      const netTop = Math.max(1024, ...series.rx, ...series.tx) * 1.15;
      draw(lines("network")[0], series.rx, netTop, area("network"));
      draw(lines("network")[1], series.tx, netTop);
      section.dataset.samples = String(Number(section.dataset.samples || 0) + 1);
      section.querySelector("#value-cpu").textContent = sample.cpu_percent.toFixed(1) + " %";
      const limit = sample.memory_limit_bytes ? " of " + bytes(sample.memory_limit_bytes) : "";
      section.querySelector("#value-memory").textContent = bytes(sample.memory_usage_bytes || 0) + limit;
      const rx = series.rx.length ? series.rx[series.rx.length - 1] : 0;
      const tx = series.tx.length ? series.tx[series.tx.length - 1] : 0;
      section.querySelector("#value-network").textContent = "↓ " + bytes(rx) + "/s ↑ " + bytes(tx) + "/s";
      status.textContent = "Last sample at " + new Date(at).toLocaleTimeString() + "; a new one every few seconds while this page is open.";
    };

    // One sample; returns how long to wait for the next (null: the container stopped).
    const sample = async () => {
      let answer;
      try {
        answer = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      } catch (error) {
        status.textContent = "Spectr did not answer; trying again.";
        return interval * 2;
      }
      const body = await answer.json().catch(() => ({}));
      if (answer.ok) {
        render(body);
        return interval;
      }
      if (answer.status === 409 || answer.status === 404) {
        status.textContent = (body.message || "The container is gone.") + " Reload the page after starting it.";
        section.dataset.stopped = "true";
        return null;
      }
      status.textContent = "No sample: " + (body.message || answer.status) + " Trying again.";
      return interval * 2;
    };
    const poll = async () => {
      timer = null;
      if (document.hidden || busy) return; // visibilitychange resumes a hidden tab
      busy = true;
      const wait = await sample();
      busy = false;
      if (wait !== null) timer = setTimeout(poll, wait);
    };
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && timer === null && section.dataset.stopped !== "true") poll();
    });
    poll();
  }

  document.addEventListener("DOMContentLoaded", () => {
    engineActions();
    document.querySelectorAll("form[data-bulk]").forEach(bulkActions);
    const stats = document.getElementById("stats");
    if (stats && stats.dataset.statsUrl) liveStats(stats);
  });
})();
