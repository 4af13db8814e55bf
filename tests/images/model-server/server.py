"""A stand-in for an LLM model server (vLLM, llama.cpp): a real model needs a GPU and weights
this machine does not have, so this tiny stdlib server answers the same OpenAI-compatible API
with canned text: GET /health, GET /v1/models, POST /v1/chat/completions (JSON or SSE).

    python3 server.py --port 8000 --model NAME
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORDS = ["spectr", "serves", "this", "stand-in", "model", "from", "its", "catalog"]


class Handler(BaseHTTPRequestHandler):
    server: StandInModelServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small responses otherwise wait on delayed ACKs

    def log_message(self, format: str, *args: object) -> None:
        print(f"{self.command} {self.path}", flush=True)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._json(200, {"status": "ok", "model": self.server.model})
        elif self.path == "/v1/models":
            model = {"id": self.server.model, "object": "model", "owned_by": "spectr-standin"}
            self._json(200, {"object": "list", "data": [model]})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        if self.path != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        words = [WORDS[i % len(WORDS)] for i in range(int(body.get("max_tokens") or 6))]
        if body.get("stream"):
            self._stream(words)
            return
        message = {"role": "assistant", "content": " ".join(words)}
        usage = {
            "prompt_tokens": 1,
            "completion_tokens": len(words),
            "total_tokens": len(words) + 1,
        }
        self._json(200, {
            "id": "chatcmpl-standin", "object": "chat.completion", "model": self.server.model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}], "usage": usage,
        })  # fmt: skip

    def _stream(self, words: list[str]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for word in words:
            chunk = {"object": "chat.completion.chunk", "model": self.server.model,
                     "choices": [{"index": 0, "delta": {"content": word + " "}}]}  # fmt: skip
            self._chunk(f"data: {json.dumps(chunk)}\n\n".encode())
            time.sleep(0.01)
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class StandInModelServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, model: str) -> None:
        super().__init__(("0.0.0.0", port), Handler)
        self.model = model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--model", default=os.environ.get("MODEL_NAME", "standin"))
    args = parser.parse_args()
    print(f"stand-in model server for {args.model} on :{args.port}", flush=True)
    # As PID 1 in a container, SIGTERM is ignored without a handler: docker stop would wait 10 s.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    StandInModelServer(args.port, args.model).serve_forever()


if __name__ == "__main__":
    main()
