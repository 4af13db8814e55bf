"""The rest of the OpenAI-shaped surface for the stand-in LLM server (tests/proxy/llm_standin.py).

Like the stand-in itself this is a test fake: no real model runtime (vLLM, llama.cpp, a speech
or rerank server) can run on this machine, so these handlers answer each endpoint in the shape
the openai client expects, with canned content and exact `usage` figures the tests can check.
Files and batches are kept in memory, per server, as a runtime that serves them would keep them.
"""

from __future__ import annotations

import base64
import email.policy
import json
from email.parser import BytesParser
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from proxy.tests.llm_standin import StandInServer

WORDS = ["spectr", "routes", "every", "token", "through", "one", "gateway", "today"]
# A few bytes that stand in for MP3 audio (an ID3 tag, then frame-sync bytes), sent in pieces.
SPEECH_CHUNKS = [b"ID3\x04\x00\x00", b"\xff\xfb" * 256, b"\xff\xfb" * 256]
JSON_POSTS = {
    "/v1/responses": "_responses",
    "/v1/moderations": "_moderations",
    "/v1/images/generations": "_images",
    "/v1/audio/speech": "_speech",
    "/v1/rerank": "_rerank",
    "/v1/batches": "_create_batch",
}
FORM_POSTS = {
    "/v1/audio/transcriptions": "_transcription",
    "/v1/audio/translations": "_transcription",
    "/v1/images/edits": "_images",
    "/v1/images/variations": "_images",
    "/v1/files": "_upload_file",
}


def words(n: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(n))


def count_words(value: object) -> int:
    return len(json.dumps(value).split()) if value else 0


def parse_form(content_type: str, raw: bytes) -> dict[str, Any]:
    """Decode a multipart/form-data body: text fields as str, files as (filename, bytes)."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    form: dict[str, Any] = {}
    for part in message.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        filename = part.get_filename()
        form[name] = (filename, data) if filename is not None else data.decode()
    return form


class SurfaceRoutes:
    """Handlers mixed into the stand-in's request handler (a BaseHTTPRequestHandler)."""

    server: StandInServer
    path: str
    headers: Any

    if TYPE_CHECKING:  # provided by the handler class this is mixed into
        wfile: Any

        def _json(self, status: int, payload: dict) -> None: ...
        def _chunk(self, data: bytes) -> None: ...
        def _lines(self, *lines: str) -> bytes: ...
        def _use_framing(self, body: dict) -> None: ...
        def send_response(self, code: int, message: str | None = None) -> None: ...
        def send_header(self, keyword: str, value: str) -> None: ...
        def end_headers(self) -> None: ...

    def surface_post(self, path: str, raw: bytes) -> bool:
        """Answer a POST of the wider surface; False when the path is not one of them."""
        if path in JSON_POSTS:
            body = json.loads(raw or b"{}")
            self.server.models_seen.append(body.get("model"))
            getattr(self, JSON_POSTS[path])(body)
        elif path in FORM_POSTS:
            form = parse_form(self.headers.get("content-type", ""), raw)
            self.server.models_seen.append(form.get("model"))
            getattr(self, FORM_POSTS[path])(form)
        elif path.startswith("/v1/batches/") and path.endswith("/cancel"):
            self._batch(path.split("/")[3], cancel=True)
        else:
            return False
        return True

    def surface_get(self, path: str) -> bool:
        """Answer a GET of files or batches; False when the path is not one of them."""
        parts = path.split("/")  # "", "v1", collection, id[, "content"]
        if path in ("/v1/files", "/v1/batches"):
            kept = self.server.files if parts[2] == "files" else self.server.batches
            self._json(200, {"object": "list", "data": list(kept.values()), "has_more": False})
        elif parts[2:3] == ["files"] and len(parts) == 4:
            self._file(parts[3])
        elif parts[2:3] == ["files"] and parts[4:] == ["content"]:
            self._file(parts[3], content=True)
        elif parts[2:3] == ["batches"] and len(parts) == 4:
            self._batch(parts[3])
        else:
            return False
        return True

    def surface_delete(self, path: str) -> bool:
        parts = path.split("/")
        if parts[2:3] != ["files"] or len(parts) != 4:
            return False
        if self.server.files.pop(parts[3], None) is None:
            self._not_found("File", parts[3])
        else:
            self._json(200, {"id": parts[3], "object": "file", "deleted": True})
        return True

    def not_served(self) -> None:
        """Answer as a server without the route does: a bare HTML 404 page."""
        self._send(404, b"<html><body><h1>404 Not Found</h1></body></html>", "text/html")

    def _responses(self, body: dict) -> None:
        n = int(body.get("max_output_tokens") or 4)
        prompt = count_words(body.get("input")) + count_words(body.get("instructions"))
        usage = {
            "input_tokens": prompt,
            "output_tokens": n,
            "total_tokens": prompt + n,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        }
        response = response_object(body.get("model"), words(n), usage)
        if body.get("stream"):
            self._response_events(body, response, n)
        else:
            self._json(200, response)

    def _response_events(self, body: dict, done: dict, n: int) -> None:
        """Stream a response as the Responses API does: named events, usage in the last one."""
        self._use_framing(body)
        self._start_stream("text/event-stream")
        item = done["output"][0]
        started = {**done, "status": "in_progress", "output": [], "usage": None}
        events: list[dict] = [
            {"type": "response.created", "response": started},
            {"type": "response.output_item.added", "output_index": 0,
             "item": {**item, "status": "in_progress", "content": []}},
            {"type": "response.content_part.added", "item_id": item["id"], "output_index": 0,
             "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}},
            *[{"type": "response.output_text.delta", "item_id": item["id"], "output_index": 0,
               "content_index": 0, "delta": word + " "} for word in words(n).split()],
            {"type": "response.output_text.done", "item_id": item["id"], "output_index": 0,
             "content_index": 0, "text": item["content"][0]["text"]},
            {"type": "response.content_part.done", "item_id": item["id"], "output_index": 0,
             "content_index": 0, "part": item["content"][0]},
            {"type": "response.output_item.done", "output_index": 0, "item": item},
            {"type": "response.completed", "response": done},
        ]  # fmt: skip
        for number, event in enumerate(events):
            data = json.dumps({**event, "sequence_number": number})
            self._chunk(self._lines(f"event: {event['type']}", f"data: {data}", ""))
        self._chunk(b"")

    def _moderations(self, body: dict) -> None:
        result = {"flagged": False, "categories": {}, "category_scores": {}}
        self._json(200, {"id": "modr-1", "model": body.get("model"), "results": [result]})

    def _images(self, body: dict) -> None:
        prompt = count_words(body.get("prompt"))
        usage = {"input_tokens": prompt, "output_tokens": 16, "total_tokens": prompt + 16}
        image = base64.b64encode(b"\x89PNG stand-in").decode()
        self._json(200, {"created": 0, "data": [{"b64_json": image}], "usage": usage})

    def _speech(self, body: dict) -> None:
        self._start_stream("audio/mpeg")
        for chunk in SPEECH_CHUNKS:
            self._chunk(chunk)
        self._chunk(b"")

    def _transcription(self, form: dict) -> None:
        _, audio = form["file"]
        self.server.uploads_seen.append(audio)
        # Exact figures the tests can check: one input token per 100 bytes of audio.
        usage = {"type": "tokens", "input_tokens": len(audio) // 100 + 1, "output_tokens": 3}
        usage["total_tokens"] = usage["input_tokens"] + 3
        self._json(200, {"text": words(3), "usage": usage})

    def _rerank(self, body: dict) -> None:
        documents = body.get("documents") or []
        results = [
            {"index": i, "relevance_score": 1 / (i + 1), "document": {"text": document}}
            for i, document in enumerate(documents)
        ]
        total = count_words(body.get("query")) + count_words(documents)
        self._json(200, {"id": "rerank-1", "model": body.get("model"), "results": results,
                         "usage": {"total_tokens": total}})  # fmt: skip

    def _upload_file(self, form: dict) -> None:
        filename, data = form["file"]
        file_id = f"file-{self.server.name}-{len(self.server.files) + 1}"
        self.server.file_contents[file_id] = data
        self.server.files[file_id] = {
            "id": file_id, "object": "file", "bytes": len(data), "created_at": 0,
            "filename": filename, "purpose": form.get("purpose"), "status": "processed",
        }  # fmt: skip
        self._json(200, self.server.files[file_id])

    def _file(self, file_id: str, content: bool = False) -> None:
        if file_id not in self.server.files:
            self._not_found("File", file_id)
        elif content:
            self._send(200, self.server.file_contents[file_id], "application/octet-stream")
        else:
            self._json(200, self.server.files[file_id])

    def _create_batch(self, body: dict) -> None:
        if body.get("input_file_id") not in self.server.files:
            self._not_found("File", str(body.get("input_file_id")))
            return
        batch_id = f"batch-{self.server.name}-{len(self.server.batches) + 1}"
        self.server.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": body.get("endpoint"),
            "input_file_id": body["input_file_id"], "created_at": 0, "status": "validating",
            "completion_window": body.get("completion_window"),
        }  # fmt: skip
        self._json(200, self.server.batches[batch_id])

    def _batch(self, batch_id: str, cancel: bool = False) -> None:
        batch = self.server.batches.get(batch_id)
        if batch is None:
            self._not_found("Batch", batch_id)
            return
        if cancel:
            batch["status"] = "cancelling"
        self._json(200, batch)

    def _not_found(self, kind: str, name: str) -> None:
        """Answer as OpenAI does for an unknown id: a 404 in its error shape."""
        error = {"message": f"No such {kind} object: {name}", "type": "invalid_request_error",
                 "param": None, "code": None}  # fmt: skip
        self._json(404, {"error": error})

    def _start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("transfer-encoding", "chunked")
        self.send_header("x-replica", self.server.name)
        self.end_headers()

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.send_header("x-replica", self.server.name)
        self.end_headers()
        self.wfile.write(data)


def response_object(model: object, text: str, usage: dict) -> dict:
    """Return a finished Responses API object with one assistant message."""
    message = {
        "type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }  # fmt: skip
    return {
        "id": "resp_1", "object": "response", "created_at": 0, "model": model,
        "status": "completed", "output": [message], "usage": usage,
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
    }  # fmt: skip
