"""A tiny OpenAI-compatible HTTP server that stands in for a real LLM server (vLLM, llama.cpp).

A real model needs a GPU this machine lacks; this server answers the same HTTP API with canned
text so the proxy's real behaviour (routing, streaming, usage) can be tested. Every response says
which replica answered (`x-replica` header). Run it on its own: `python llm_standin.py --port N`.
Chat, completions and embeddings are answered here; the rest of the OpenAI-shaped surface
(responses, moderations, images, audio, rerank, files, batches) in llm_standin_surface.py.
"""

from __future__ import annotations

import argparse
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

try:
    from proxy.tests.llm_standin_surface import SurfaceRoutes
except ImportError:  # run as a script (the benches do so): this folder is first on sys.path
    from llm_standin_surface import SurfaceRoutes  # type: ignore[no-redef]

WORDS = ["spectr", "routes", "every", "token", "through", "one", "gateway", "today"]
# Line ends of each SSE framing; "mixed" cycles through all three, as the SSE spec allows (a CR
# is always followed by another CR here, never by an LF, which would make it one CRLF).
LINE_ENDS = {"lf": ["\n"], "crlf": ["\r\n"], "cr": ["\r"], "mixed": ["\r\n", "\n", "\r"]}


class StandInHandler(SurfaceRoutes, BaseHTTPRequestHandler):
    server: StandInServer
    protocol_version = "HTTP/1.1"
    # Without this every small response waits ~40 ms on delayed ACKs.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if self._unserved(url.path, b""):
            return
        if url.path == "/health":
            self._json(200 if self.server.healthy else 503, {"healthy": self.server.healthy})
        elif url.path == "/slow":
            time.sleep(float(parse_qs(url.query).get("s", ["2"])[0]))
            self._json(200, {"slow": True})
        elif not self.surface_get(url.path):
            self._json(200, self._echo())

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        path = urlsplit(self.path).path
        if self._unserved(path, raw):
            return
        if path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
            self._completion(path, json.loads(raw or b"{}"))
        elif not self.surface_post(path, raw):
            self._json(200, {**self._echo(), "body": raw.decode(errors="replace")})

    def do_DELETE(self) -> None:
        path = urlsplit(self.path).path
        if not self._unserved(path, b"") and not self.surface_delete(path):
            self._json(200, self._echo())

    def _unserved(self, path: str, raw: bytes) -> bool:
        """Record the request (when asked to); answer as a server without the route if told to."""
        if self.server.keep_requests:
            self.server.requests_seen.append((self.command, path, dict(self.headers), raw))
        if path not in self.server.unserved:
            return False
        self.not_served()
        return True

    def _echo(self) -> dict:
        return {"replica": self.server.name, "path": self.path, "headers": dict(self.headers)}

    def _completion(self, path: str, body: dict) -> None:
        self.server.models_seen.append(body.get("model"))
        self.server.bodies_seen.append(body)
        prompt_tokens = len(json.dumps(body.get("messages") or body.get("prompt") or "").split())
        n = int(body.get("max_tokens") or 4)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n}
        usage["total_tokens"] = prompt_tokens + n
        if path == "/v1/embeddings":
            usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
            self._json(200, {"object": "list", "data": [{"embedding": [0.1, 0.2]}], "usage": usage})
        elif body.get("stream"):
            self._stream(body, n, usage)
        else:
            text = " ".join(WORDS[i % len(WORDS)] for i in range(n))
            choice = {"index": 0, "message": {"role": "assistant", "content": text}}
            self._json(
                200,
                {
                    "id": "cmpl-1",
                    "object": "chat.completion",
                    "model": body.get("model"),
                    "choices": [choice],
                    "usage": usage,
                },
            )

    def _stream(self, body: dict, n: int, usage: dict) -> None:
        delay = float(body.get("x_chunk_delay_s", self.server.chunk_delay_s))
        self._use_framing(body)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("x-replica", self.server.name)
        self.end_headers()
        self._chunk(self._lines(": ping", ""))  # a comment, as sse-starlette sends
        for i in range(n):
            delta = {"content": WORDS[i % len(WORDS)] + " "}
            self._event(
                {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
            )
            if i == 0 and self.server.stream_gate is not None:
                # Tests hold the rest of the stream until the first chunk reached the client.
                self.server.stream_gate.wait(15)
            time.sleep(delay)
        asked = (body.get("stream_options") or {}).get("include_usage")
        if asked and self.server.sends_usage:
            self._event({"object": "chat.completion.chunk", "choices": [], "usage": usage})
        self._chunk(self._lines("data: [DONE]", ""))
        time.sleep(self.server.pause_before_end_s)
        self._chunk(b"")

    def _use_framing(self, body: dict) -> None:
        """Pick the SSE line ends of this response: the request's `x_framing` or the server's."""
        self._line_ends = itertools.cycle(LINE_ENDS[body.get("x_framing", self.server.framing)])

    def _event(self, payload: dict) -> None:
        data = self._lines(f"data: {json.dumps(payload)}", "")
        if self.server.split_events:
            # Two network chunks per event, cut just before its last byte (between CR and LF).
            self._chunk(data[:-1])
            data = data[-1:]
        self._chunk(data)

    def _lines(self, *lines: str) -> bytes:
        return "".join(line + next(self._line_ends) for line in lines).encode()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-replica", self.server.name)
        self.end_headers()
        self.wfile.write(data)


class StandInServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # benchmarks open 16+ connections at once

    def __init__(
        self,
        port: int = 0,
        name: str = "standin",
        chunk_delay_s: float = 0.05,
        framing: str = "lf",
        sends_usage: bool = True,
    ) -> None:
        super().__init__(("127.0.0.1", port), StandInHandler)
        self.name = name
        self.chunk_delay_s = chunk_delay_s
        # SSE line ends ("lf", "crlf", "cr", "mixed"); a request's `x_framing` overrides it.
        self.framing = framing
        # False: a stream never carries usage, even when asked (llama.cpp's server).
        self.sends_usage = sends_usage
        self.split_events = False
        # Seconds between `[DONE]` and the body's end (llama.cpp's server takes a moment).
        self.pause_before_end_s = 0.0
        self.healthy = True
        self.models_seen: list[str | None] = []
        self.bodies_seen: list[dict] = []
        self.stream_gate: threading.Event | None = None
        # Paths answered as by a server without them (a bare HTML 404), e.g. {"/v1/audio/speech"}.
        self.unserved: set[str] = set()
        # (method, path, headers, body) of every request as it arrived, while keep_requests is
        # set (off by default: the benches send this server many thousands).
        self.keep_requests = False
        self.requests_seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.uploads_seen: list[bytes] = []  # audio files of transcriptions and translations
        self.files: dict[str, dict] = {}
        self.file_contents: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StandInServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (the port then refuses connections)."""
        self.shutdown()
        self.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--name", default="standin")
    parser.add_argument("--chunk-delay", type=float, default=0.05)
    parser.add_argument("--framing", choices=sorted(LINE_ENDS), default="lf")
    args = parser.parse_args()
    server = StandInServer(args.port, args.name, args.chunk_delay, args.framing)
    print(server.port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
