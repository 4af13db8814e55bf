// The colour theme, set before the page paints (this script is not deferred): the person's
// choice kept in localStorage, else the system's (prefers-color-scheme), followed live.
(function () {
  "use strict";
  const KEY = "spectr-theme";
  const system = window.matchMedia("(prefers-color-scheme: dark)");
  const stored = () => {
    try { return window.localStorage.getItem(KEY); } catch (error) { return null; }
  };
  const apply = () => {
    const chosen = stored();
    document.documentElement.dataset.theme =
      chosen === "dark" || chosen === "light" ? chosen : (system.matches ? "dark" : "light");
  };
  apply();
  system.addEventListener("change", apply);
  window.spectrTheme = {
    toggle() {
      const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
      try { window.localStorage.setItem(KEY, next); } catch (error) { /* private mode: this page only */ }
      document.documentElement.dataset.theme = next;
      return next;
    },
  };
})();
