// The compose editor: line numbers beside the text, the lines the server found problems on
// marked, and each problem's "line N" moving the cursor there.
(function () {
  "use strict";

  function setUp(editor) {
    const text = editor.querySelector("textarea");
    const gutter = editor.querySelector("[data-gutter]");
    const problemLines = () => new Set(Array.from(editor.querySelectorAll("[data-goto-line]"))
      .map((button) => Number(button.dataset.gotoLine)));
    const number = () => {
      const bad = problemLines();
      const count = text.value.split("\n").length;
      const rows = [];
      for (let line = 1; line <= count; line += 1) {
        rows.push(bad.has(line) ? '<span class="bad-line">' + line + "</span>" : String(line));
      }
      gutter.innerHTML = rows.join("\n");
      gutter.scrollTop = text.scrollTop;
    };
    const goTo = (line) => {
      const lines = text.value.split("\n");
      const start = lines.slice(0, line - 1).reduce((sum, l) => sum + l.length + 1, 0);
      text.focus();
      text.setSelectionRange(start, start + (lines[line - 1] || "").length);
      const height = text.scrollHeight / Math.max(lines.length, 1);
      text.scrollTop = Math.max(0, (line - 3) * height);
    };
    text.addEventListener("input", number);
    text.addEventListener("scroll", () => { gutter.scrollTop = text.scrollTop; });
    editor.addEventListener("click", (event) => {
      const button = event.target.closest("[data-goto-line]");
      if (button) goTo(Number(button.dataset.gotoLine));
    });
    // The problems list is swapped in by htmx: mark the new lines when it changes.
    editor.addEventListener("htmx:afterSwap", number);
    number();
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-compose-editor]").forEach(setUp);
  });
})();
