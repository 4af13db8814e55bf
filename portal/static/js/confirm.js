// Destructive forms carry data-confirm: nothing is sent until the person agrees. This script is
// not deferred, so the question is asked from the moment a button is drawn: a press that comes
// before the deferred scripts run (a slow page, a quick hand) must ask too, not send at once.
(function () {
  "use strict";
  document.addEventListener("submit", (event) => {
    const form = event.target.closest("form");
    if (!form) return;
    if (form.matches("[data-confirm]") && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      return;
    }
    // A form whose question a deferred script works out (the containers' bulk actions name the
    // containers chosen) sends nothing until that script has taken it over.
    if (form.matches("[data-asks-when-ready]") && !form.dataset.ready) event.preventDefault();
  }, true);
})();
