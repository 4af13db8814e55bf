// A container's console: xterm.js (vendored) over a WebSocket to the portal, which relays it to
// a TTY exec in the container. Keystrokes go as binary messages, a resize as a text one; the
// last text message from the portal says why the session ended.
(function () {
  "use strict";
  const encoder = new TextEncoder();

  function consoleSection(section) {
    const state = section.querySelector("[data-console-state]");
    const shell = section.querySelector("[data-console-shell]");
    const connect = section.querySelector("[data-console-connect]");
    const disconnect = section.querySelector("[data-console-disconnect]");
    const screen = section.querySelector("[data-console-screen]");
    let term = null, fit = null, ws = null;
    const say = (text, kind) => { state.textContent = text; state.dataset.kind = kind; };

    const started = () => {
      if (term) return;
      term = new window.Terminal({ cursorBlink: true, fontSize: 14, scrollback: 5000,
        fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
        // brightBlack: the session's end notes (and a shell's grey) readable on the dark ground.
        theme: { background: "#11151c", foreground: "#d6dde9", brightBlack: "#8f99ab" } });
      fit = new window.FitAddon.FitAddon();
      term.loadAddon(fit);
      screen.hidden = false;
      term.open(screen);
      fit.fit();
      term.onData((data) => { if (ws && ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(data)); });
      term.onResize((size) => {
        if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ resize: [size.cols, size.rows] }));
      });
      window.addEventListener("resize", () => fit.fit());
    };
    const closed = () => {
      connect.hidden = false;
      disconnect.hidden = true;
      shell.disabled = false;
      ws = null;
    };

    connect.addEventListener("click", () => {
      started();
      const url = new URL(section.dataset.url, window.location.href);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      url.searchParams.set("shell", shell.value);
      url.searchParams.set("cols", term.cols);
      url.searchParams.set("rows", term.rows);
      term.reset();
      say("connecting…", "connecting");
      ws = new WebSocket(url.toString());
      ws.binaryType = "arraybuffer";
      let ended = false;
      ws.addEventListener("open", () => {
        say("connected: " + shell.options[shell.selectedIndex].text, "live");
        connect.hidden = true;
        disconnect.hidden = false;
        shell.disabled = true;
        term.focus();
      });
      ws.addEventListener("message", (event) => {
        if (typeof event.data !== "string") {
          term.write(new Uint8Array(event.data));
          return;
        }
        const end = JSON.parse(event.data);
        if (!end.end) return;
        ended = true;
        term.write("\r\n\x1b[90m— " + end.message + " —\x1b[0m\r\n");
        say(end.message, end.end);
      });
      ws.addEventListener("close", (event) => {
        // After Disconnect the socket closes a moment later: its own words stay.
        if (!ended && !event.target.spectrDisconnected) say("The connection closed.", "closed");
        closed();
      });
    });
    disconnect.addEventListener("click", () => {
      if (ws) {
        ws.spectrDisconnected = true;
        ws.close();
      }
      say("Disconnected; the shell was ended.", "closed");
    });
    // Leaving the page closes the socket; the portal then ends the shell.
    window.addEventListener("pagehide", () => { if (ws) ws.close(); });
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-console]").forEach(consoleSection);
  });
})();
