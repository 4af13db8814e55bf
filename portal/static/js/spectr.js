// Spectr's small amount of page behaviour: CSRF for htmx, and live operation logs over SSE.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]');
  document.addEventListener("htmx:configRequest", (event) => {
    if (csrf) event.detail.headers["X-CSRFToken"] = csrf.content;
  });

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
      document.getElementById("op-error").textContent = state.error || "";
    };
    source.addEventListener("state", showState);
    source.addEventListener("end", (event) => { showState(event); source.close(); });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const section = document.getElementById("operation");
    if (section) followOperation(section);
  });
})();
