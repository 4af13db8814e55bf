// Page comfort shared by every page: toasts for flash messages, the theme toggle, and short
// tables (table[data-table]) sorted, searched and paged in the browser. Long lists are sorted
// and paged by the server instead (portal/web/listing.py).
(function () {
  "use strict";
  const SUCCESS_MS = 6000;

  // A toast that hides itself waits while the pointer or focus is on it (time to read it).
  function setUpToast(toast) {
    const close = () => { toast.hidden = true; };
    toast.querySelector(".toast-close").addEventListener("click", close);
    if (toast.dataset.autohide !== "true") return;
    let timer = null;
    const start = () => { timer = window.setTimeout(close, SUCCESS_MS); };
    const stop = () => { window.clearTimeout(timer); };
    toast.addEventListener("mouseenter", stop);
    toast.addEventListener("mouseleave", start);
    toast.addEventListener("focusin", stop);
    toast.addEventListener("focusout", start);
    start();
  }

  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    document.querySelectorAll(".toast:not([hidden])").forEach((toast) => { toast.hidden = true; });
  });

  function setUpThemeToggle(button) {
    const show = () => {
      const dark = document.documentElement.dataset.theme === "dark";
      button.textContent = dark ? "Light theme" : "Dark theme";
      button.setAttribute("aria-pressed", dark ? "true" : "false");
    };
    button.addEventListener("click", () => { window.spectrTheme.toggle(); show(); });
    new MutationObserver(show).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
    button.hidden = false;
    show();
  }

  // What a cell sorts by: its data-sort, a <time>'s datetime, else its text; numbers as numbers.
  function sortValue(cell) {
    if (!cell) return "";
    if (cell.dataset.sort !== undefined) return cell.dataset.sort;
    const time = cell.querySelector("time[datetime]");
    if (time) return time.getAttribute("datetime");
    return cell.textContent.trim();
  }

  function compare(a, b) {
    const x = Number(a.replace(/[,\s]/g, "")), y = Number(b.replace(/[,\s]/g, ""));
    if (a !== "" && b !== "" && !Number.isNaN(x) && !Number.isNaN(y)) return x - y;
    return a.localeCompare(b, undefined, { numeric: true, sensitivity: "base" });
  }

  // A short table: a search box above it, sort buttons in its headers, pages of data-page-size
  // rows below it. Rows marked data-empty (the "nothing yet" row) are left alone. A live list
  // that adds or removes rows calls table.spectrRefresh(): the search, the order and the page
  // chosen still hold for the rows it has now.
  let tables = 0;
  function enhanceTable(table) {
    const index = tables++;
    const body = table.tBodies[0];
    if (!body) return;
    const collect = () => Array.from(body.rows).filter((row) => !row.hasAttribute("data-empty") && row.cells.length > 1);
    let rows = collect();
    const pageSize = Number(table.dataset.pageSize || 25);
    const name = table.dataset.table || "rows";
    let shown = rows, page = 0, sortIndex = -1, descending = false, sortable = false;

    const tools = document.createElement("div");
    tools.className = "table-tools";
    const label = document.createElement("label");
    label.textContent = "Search " + name + " ";
    const search = document.createElement("input");
    search.type = "search";
    search.dataset.tableSearch = String(index);
    label.appendChild(search);
    const count = document.createElement("span");
    count.className = "muted";
    count.setAttribute("aria-live", "polite");
    tools.append(label, count);
    const pager = document.createElement("nav");
    pager.className = "pager";
    pager.setAttribute("aria-label", "Pages of " + name);
    table.before(tools);
    table.after(pager);

    const render = () => {
      const pages = Math.max(1, Math.ceil(shown.length / pageSize));
      page = Math.min(page, pages - 1);
      rows.forEach((row) => { row.hidden = true; });
      shown.forEach((row, i) => {
        row.hidden = i < page * pageSize || i >= (page + 1) * pageSize;
        body.appendChild(row);
      });
      body.querySelectorAll(":scope > tr[data-empty]").forEach((row) => { body.appendChild(row); });
      count.textContent = shown.length === rows.length
        ? rows.length + " " + name : shown.length + " of " + rows.length + " " + name;
      pager.replaceChildren();
      pager.hidden = pages <= 1; // an empty pager would only add space under the table
      if (pages > 1) {
        const go = (text, target, disabled) => {
          const button = document.createElement("button");
          button.type = "button";
          button.className = "link";
          button.textContent = text;
          button.disabled = disabled;
          button.addEventListener("click", () => { page = target; render(); });
          return button;
        };
        const where = document.createElement("span");
        where.textContent = "page " + (page + 1) + " of " + pages;
        pager.append(go("← previous", page - 1, page === 0), where, go("next →", page + 1, page >= pages - 1));
      }
    };

    const sortRows = () => {
      shown.sort((a, b) => compare(sortValue(a.cells[sortIndex]), sortValue(b.cells[sortIndex])) * (descending ? -1 : 1));
    };
    const select = () => {
      const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
      shown = rows.filter((row) => {
        const text = row.textContent.toLowerCase();
        return words.every((word) => text.includes(word));
      });
      if (sortIndex >= 0) sortRows();
    };
    search.addEventListener("input", () => { select(); page = 0; render(); });

    // Sort buttons once there is something to order.
    const makeSortable = () => {
      sortable = true;
      Array.from(table.tHead ? table.tHead.rows[0].cells : []).forEach((th, column) => {
        const text = th.textContent.trim();
        if (!text || th.hasAttribute("data-nosort")) return;
        const button = document.createElement("button");
        button.type = "button";
        button.className = "sort";
        button.innerHTML = '<span></span><span class="sort-mark" aria-hidden="true">↕</span>';
        button.firstChild.textContent = text;
        th.replaceChildren(button);
        button.addEventListener("click", () => {
          descending = sortIndex === column ? !descending : false;
          sortIndex = column;
          table.querySelectorAll("thead th").forEach((other) => {
            other.removeAttribute("aria-sort");
            const mark = other.querySelector(".sort-mark");
            if (mark) mark.textContent = "↕";
          });
          th.setAttribute("aria-sort", descending ? "descending" : "ascending");
          button.querySelector(".sort-mark").textContent = descending ? "▼" : "▲";
          sortRows();
          render();
        });
      });
    };

    const setUp = () => {
      const few = rows.length < 2; // nothing to order
      tools.hidden = few;
      pager.hidden = few;
      if (few) return false;
      if (!sortable) makeSortable();
      return true;
    };
    table.spectrRefresh = () => {
      rows = collect();
      if (!setUp()) { rows.forEach((row) => { row.hidden = false; }); return; }
      select();
      render();
    };
    if (setUp()) render();
  }
  window.spectrTables = { enhance: enhanceTable };

  // A box that scrolls sideways (a wide table on a phone, a log) can be reached with the
  // keyboard, so its hidden part can be scrolled into view without a mouse.
  function keyboardScrollable() {
    document.querySelectorAll("main table, main pre, main .log").forEach((box) => {
      const scrolls = box.scrollWidth > box.clientWidth + 1 || box.scrollHeight > box.clientHeight + 1;
      if (scrolls && !box.hasAttribute("tabindex")) {
        box.setAttribute("tabindex", "0");
        box.dataset.scrollFocus = "true";
      } else if (!scrolls && box.dataset.scrollFocus) {
        box.removeAttribute("tabindex");
        delete box.dataset.scrollFocus;
      }
    });
  }
  let resizeFrame = 0;
  window.addEventListener("resize", () => {
    window.cancelAnimationFrame(resizeFrame);
    resizeFrame = window.requestAnimationFrame(keyboardScrollable);
  });

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll(".toast").forEach(setUpToast);
    const toggle = document.getElementById("theme-toggle");
    if (toggle) setUpThemeToggle(toggle);
    document.querySelectorAll("table[data-table]").forEach(enhanceTable);
    keyboardScrollable();
    document.body.addEventListener("htmx:afterSettle", keyboardScrollable);
  });
})();
