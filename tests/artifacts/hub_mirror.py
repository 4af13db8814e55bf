"""A stand-in for an internal Hugging Face Hub mirror (the Hub and its mirrors cannot be reached
here): the two endpoints an import uses, with Bearer auth and the Hub's redirect of LFS files
to a content-addressed URL, served over real HTTP on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


class HubMirror:
    def __init__(self, repository: str, folder: Path, token: str) -> None:
        self.repository, self.folder, self.token = repository, folder, token
        self.tampered: set[str] = set()  # paths served with a changed byte
        self.requests: list[str] = []
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                mirror.requests.append(self.path)
                if self.headers.get("Authorization") != f"Bearer {mirror.token}":
                    return self._send(401, b'{"error":"Invalid credentials"}')
                path = unquote(urlsplit(self.path).path)
                listing = f"/api/models/{mirror.repository}/revision/main"
                resolve = f"/{mirror.repository}/resolve/main/"
                if path == listing:
                    return self._send(200, json.dumps(mirror.listing()).encode())
                if path.startswith(resolve):
                    name = path[len(resolve) :]
                    if (mirror.folder / name).is_file():
                        self.send_response(302)  # as the Hub sends LFS files to its CDN
                        self.send_header("Location", f"/cdn/{name}")
                        self.send_header("Content-Length", "0")
                        return self.end_headers()
                if path.startswith("/cdn/"):
                    return self._send(200, mirror.content(path[len("/cdn/") :]))
                return self._send(404, b'{"error":"Entry not found"}')

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def listing(self) -> dict:
        siblings = []
        for path in sorted(self.folder.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                item = {"rfilename": path.relative_to(self.folder).as_posix(), "size": len(data)}
                if path.suffix in (".gguf", ".safetensors"):  # what the Hub keeps in LFS
                    item["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                siblings.append(item)
        return {"id": self.repository, "sha": "0" * 40, "siblings": siblings}

    def content(self, name: str) -> bytes:
        data = bytearray((self.folder / name).read_bytes())
        if name in self.tampered:
            data[len(data) // 2] ^= 0xFF
        return bytes(data)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
