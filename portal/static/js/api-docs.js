// Swagger UI of Spectr's API. A browser signed in to the portal sends its session cookie with
// "Try it out"; the API then wants the CSRF token on every mutating call, in the X-CSRFToken
// header, as the portal's own pages send it (spectr.js). A bearer token needs none, and the
// header does no harm beside it.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const container = document.getElementById("swagger-ui-container");
  const SAFE = /^(GET|HEAD|OPTIONS)$/i;

  function addCsrfToken(request) {
    const sameOrigin = new URL(request.url, window.location.href).origin === window.location.origin;
    if (sameOrigin && !SAFE.test(request.method || "GET")) {
      request.headers["X-CSRFToken"] = csrf;
    }
    return request;
  }

  window.addEventListener("load", () => {
    const config = Object.assign(
      // No badge from swagger.io's online validator: Spectr runs in closed networks. Tags start
      // folded, with a filter box: the API has 150 operations, and this Swagger UI, asked to
      // expand them all at once, stopped after the eleventh without a word.
      {
        url: container.dataset.specUrl,
        dom_id: "#swagger-ui-container",
        validatorUrl: null,
        docExpansion: "none",
        filter: true,
      },
      JSON.parse(container.dataset.config || "{}"),
      { requestInterceptor: addCsrfToken },
    );
    window.ui = SwaggerUIBundle(config);
  });
})();
