// A container's log viewer: the last N lines (or all) followed live over SSE, paused and resumed
// without losing a line, timestamps and wrapping on demand, a search that highlights and counts
// its matches, stderr told apart from stdout, and the whole log as a .log file.
//
// Each line's SSE id is its timestamp: the browser reconnects by itself with Last-Event-ID after
// a broken connection, and after an `end` (the container stopped, was removed, has not started
// yet) or a pause the viewer asks again with since=, so a line is never shown twice. Why the
// stream ended is said, in the heading and once in the box, never an empty box.
(function () {
  "use strict";

  const MAX_LINES = 20000; // what a page holds; older lines leave it (the download has them all)
  const FIRST_RETRY_MS = 2000;

  // Engine times in an order that compares as text (Docker trims the fraction's zeros).
  const sortable = (ts) => {
    const parts = /^(.*:\d\d)(?:\.(\d+))?Z$/.exec(ts || "");
    return parts ? parts[1] + "." + (parts[2] || "").padEnd(9, "0") : ts || "";
  };
  // "2026-12-04T23:59:01.123456789Z" -> "2026-12-04 23:59:01.123"
  const shortTime = (ts) => (ts || "").replace("T", " ").replace(/(\.\d{3})\d*/, "$1").replace("Z", "");

  function viewer(log) {
    const root = log.closest("[data-log-viewer]") || log.parentElement;
    const control = (name) => root.querySelector("[data-log-" + name + "]");
    const tail = control("tail"), follow = control("follow"), stamps = control("timestamps");
    const wrap = control("wrap"), search = control("search"), only = control("only");
    const count = control("count"), next = control("next"), download = control("download");
    const state = document.getElementById(log.dataset.state);
    let lastId = "", retryMs = FIRST_RETRY_MS, lastNote = "", source = null, retry = null;
    let query = "", current = -1;

    const say = (text, kind) => {
      if (!state) return;
      state.textContent = text;
      state.dataset.kind = kind;
    };
    const note = (text) => {
      if (text === lastNote) return;
      if (pending.length) flush(); // after the lines that came before it
      lastNote = text;
      const span = document.createElement("span");
      span.className = "log-note";
      span.textContent = "— " + text + " —";
      log.appendChild(span);
    };

    // One line: its time (shown when timestamps are on), then its text with any matches marked.
    const paint = (span) => {
      const text = span.dataset.text;
      span.replaceChildren();
      const time = document.createElement("time");
      time.dateTime = span.dataset.ts || "";
      time.textContent = shortTime(span.dataset.ts) + " ";
      span.appendChild(time);
      let found = 0;
      if (query) {
        const lower = text.toLowerCase();
        let at = 0;
        for (let hit = lower.indexOf(query, at); hit >= 0; hit = lower.indexOf(query, at)) {
          span.appendChild(document.createTextNode(text.slice(at, hit)));
          const mark = document.createElement("mark");
          mark.textContent = text.slice(hit, hit + query.length);
          span.appendChild(mark);
          at = hit + query.length;
          found += 1;
        }
        span.appendChild(document.createTextNode(text.slice(at)));
      } else {
        span.appendChild(document.createTextNode(text));
      }
      span.classList.toggle("match", found > 0);
      return found;
    };
    const lines = () => log.querySelectorAll("span.line");
    const showCount = () => {
      if (!count) return;
      const marks = log.querySelectorAll("mark").length;
      count.textContent = !query ? "" : marks === 0 ? "no match" : marks === 1 ? "1 match" : marks + " matches";
      count.dataset.matches = String(marks);
    };
    const searchAgain = () => {
      query = search ? search.value.trim().toLowerCase() : "";
      current = -1;
      lines().forEach(paint);
      log.classList.toggle("only-matches", Boolean(query && only && only.checked));
      showCount();
    };
    const nextMatch = () => {
      const marks = log.querySelectorAll("mark");
      if (!marks.length) return;
      marks.forEach((mark) => mark.classList.remove("current"));
      current = (current + 1) % marks.length;
      marks[current].classList.add("current");
      marks[current].scrollIntoView({ block: "center" });
      if (count) count.textContent = (current + 1) + " of " + marks.length + (marks.length === 1 ? " match" : " matches");
    };

    // Lines arrive one event each, sometimes thousands at once: they are put on the page in
    // batches, so the browser lays the box out once per batch rather than once per line.
    let pending = [], flushing = null, shownLines = 0;
    const lineElement = (line) => {
      const span = document.createElement("span");
      span.className = "line" + (line.stream === "stderr" ? " log-stderr" : "");
      if (line.stream === "stderr") span.title = "stderr";
      span.dataset.ts = line.ts || "";
      span.dataset.text = line.data.replace(/\r?\n$/, "");
      return span;
    };
    const flush = () => {
      flushing = null;
      const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      const batch = document.createDocumentFragment();
      let found = 0;
      pending.forEach((line) => {
        const span = lineElement(line);
        found += paint(span);
        batch.appendChild(span);
      });
      shownLines += pending.length;
      pending = [];
      log.appendChild(batch);
      if (shownLines > MAX_LINES) dropOldest(shownLines - MAX_LINES);
      if (found) showCount();
      if (atBottom && follow.checked) log.scrollTop = log.scrollHeight;
    };
    const dropOldest = (excess) => {
      const all = lines();
      for (let index = 0; index < excess; index += 1) all[index].remove();
      shownLines -= excess;
      if (!log.querySelector(".log-dropped")) {
        const dropped = document.createElement("span");
        dropped.className = "log-note log-dropped";
        dropped.textContent = "— older lines left the page; Download has the whole log —";
        log.prepend(dropped);
      }
    };
    const addLine = (line) => {
      pending.push(line);
      if (flushing === null) flushing = window.setTimeout(flush, 30);
    };
    const clearLines = () => {
      pending = [];
      shownLines = 0;
      if (flushing !== null) window.clearTimeout(flushing);
      flushing = null;
      log.replaceChildren();
    };

    const close = () => {
      if (source) source.close();
      source = null;
      if (retry) window.clearTimeout(retry);
      retry = null;
    };
    const again = (why, kind) => {
      close();
      const seconds = Math.round(retryMs / 1000);
      say(why + " Looking again in " + seconds + " s.", kind);
      note(why);
      retry = window.setTimeout(open, retryMs);
      retryMs = Math.min(retryMs * 2, 30000);
    };
    function open() {
      close();
      const since = lastId ? "&since=" + encodeURIComponent(lastId) : "";
      source = new EventSource(log.dataset.url + "&tail=" + encodeURIComponent(tail.value) + since);
      source.addEventListener("open", () => say("live", "live"));
      source.addEventListener("line", (event) => {
        // The latest time seen, not the last line's: a stderr line can be older than the
        // stdout line before it, and resuming from it would show lines twice.
        if (event.lastEventId && sortable(event.lastEventId) > sortable(lastId)) lastId = event.lastEventId;
        addLine(JSON.parse(event.data));
        retryMs = FIRST_RETRY_MS;
        lastNote = "";
        say("live", "live");
      });
      source.addEventListener("end", (event) => {
        const end = JSON.parse(event.data);
        again(end.message, end.reason);
      });
      source.addEventListener("error", () => {
        if (!source) return;
        // CONNECTING: the browser is already reconnecting, with Last-Event-ID.
        if (source.readyState === EventSource.CONNECTING) say("connection lost; reconnecting…", "error");
        else again("The log could not be opened.", "error");
      });
    }

    const pause = () => {
      close();
      if (pending.length) flush();
      const shown = shownLines;
      say("paused: " + shown + (shown === 1 ? " line" : " lines") + " shown; tick Follow to go on", "paused");
    };
    const downloadHref = () => {
      if (!download) return;
      const url = new URL(download.dataset.base || download.getAttribute("href"), window.location.href);
      download.dataset.base = download.dataset.base || download.getAttribute("href");
      url.searchParams.set("tail", tail.value);
      url.searchParams.set("timestamps", stamps.checked ? "1" : "0");
      download.setAttribute("href", url.pathname + url.search);
      download.title = (tail.value === "all" ? "The whole log" : "The last " + tail.value + " lines") +
        (stamps.checked ? ", each with its time" : "") + ", as a .log file";
    };

    follow.addEventListener("change", () => {
      if (follow.checked) {
        lastNote = "";
        open(); // from the last line shown: what came meanwhile arrives, nothing twice
      } else {
        pause();
      }
    });
    tail.addEventListener("change", () => {
      // Another window onto the log: read it again from the end, and follow it.
      lastId = "";
      lastNote = "";
      clearLines();
      follow.checked = true;
      retryMs = FIRST_RETRY_MS;
      open();
      searchAgain();
      downloadHref();
    });
    const showStamps = () => { log.classList.toggle("show-ts", stamps.checked); downloadHref(); };
    const wrapLines = () => log.classList.toggle("wrap", wrap.checked);
    stamps.addEventListener("change", showStamps);
    wrap.addEventListener("change", wrapLines);
    if (search) {
      let timer = null;
      search.addEventListener("input", () => {
        window.clearTimeout(timer);
        timer = window.setTimeout(searchAgain, 150);
      });
      search.addEventListener("keydown", (event) => {
        if (event.key === "Enter") {
          event.preventDefault();
          window.clearTimeout(timer);
          if (search.value.trim().toLowerCase() !== query) searchAgain();
          nextMatch();
        }
      });
    }
    if (only) only.addEventListener("change", searchAgain);
    if (next) next.addEventListener("click", nextMatch);
    showStamps();
    wrapLines();
    downloadHref();
    open();
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-follow-log]").forEach(viewer);
  });
})();
