"""Streaming endpoints: container logs and exec, relayed frame by frame as JSON lines."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import time
from datetime import datetime
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from agent.docker_api import DockerAPI, DockerError, DockerStream, FrameDecoder, quote_segment
from agent.errors import bad_request, from_docker, invalid
from agent.web import Request, Router, StreamWriter

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
MAX_EXEC_TIMEOUT_S = 3600.0
PID_WAIT_S = 10.0


def _since(value: str | None) -> str | None:
    """Accept a Unix timestamp or an ISO-8601 time; return the engine's Unix timestamp."""
    if value is None or value == "":
        return None
    try:
        return str(float(value))
    except ValueError:
        pass
    try:
        return str(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError as exc:
        raise bad_request("since must be a Unix timestamp or an ISO-8601 time") from exc


def log_line(stream: str, payload: bytes, timestamps: bool) -> str:
    """Return one JSON line {stream[, ts], data}.

    Built by hand around json's C string escaper: five times cheaper per frame than encoding
    a dict, and frames are what a busy log is made of.
    """
    text = payload.decode(errors="replace")
    if timestamps:
        stamp, _, text = text.partition(" ")
        return f'{{"stream":"{stream}","ts":{_quote(stamp)},"data":{_quote(text)}}}\n'
    return f'{{"stream":"{stream}","data":{_quote(text)}}}\n'


def relay(
    source: DockerStream,
    writer: StreamWriter,
    decoder: FrameDecoder,
    timestamps: bool,
    deadline: float | None = None,
) -> bool:
    """Copy frames until the source ends, the client leaves or the deadline passes.

    Return True when the source ended by itself.
    """
    client = writer.handler.connection
    while not source.eof:
        wait = KEEPALIVE_S if deadline is None else min(KEEPALIVE_S, deadline - time.monotonic())
        if wait <= 0:
            return False
        if not source.has_buffered():
            readable, _, _ = select.select([source, client], [], [], wait)
            if client in readable:
                return False  # clients send nothing mid-stream: this is their close
            if not readable:
                writer.keepalive()  # fails once the client is gone
                continue
        frames = decoder.feed(source.read_some())
        if frames:  # one chunk per socket read: a flush per frame costs half the throughput
            lines = [log_line(stream, payload, timestamps) for stream, payload in frames]
            writer.write("".join(lines).encode())
    return True


class StreamRoutes:
    """Logs and exec handlers bound to the agent's single Docker client."""

    def __init__(self, docker: DockerAPI) -> None:
        self.docker = docker

    def register(self, router: Router) -> None:
        """Add this module's routes."""
        router.add("GET", "/v1/containers/{id}/logs", self.logs)
        router.add("POST", "/v1/containers/{id}/exec", self.exec)

    def logs(self, request: Request) -> None:
        """Stream logs as JSON lines until the client leaves or (follow) the container stops."""
        container = quote_segment(request.params["id"])
        tail = request.arg("tail", "all")
        if tail != "all" and not (tail or "").isdigit():
            raise bad_request("tail must be a number of lines or 'all'")
        timestamps = request.flag("timestamps")
        params = {
            "follow": int(request.flag("follow")),
            "stdout": int(request.flag("stdout", True)),
            "stderr": int(request.flag("stderr", True)),
            "since": _since(request.arg("since")),
            "timestamps": int(timestamps),
            "tail": tail,
        }
        tty = bool(self.docker.request("GET", f"/containers/{container}/json")["Config"]["Tty"])
        source = self.docker.open_stream("GET", f"/containers/{container}/logs", params)
        writer = request.stream()
        try:
            relay(source, writer, FrameDecoder(tty), timestamps)
        except OSError:
            pass  # the client left mid-write
        except DockerError as error:  # headers are gone: the error travels as the last line
            _write_error(writer, error)
        finally:
            source.close()
            writer.close()

    def exec(self, request: Request) -> None:
        """Run an argv in the container, streaming stdout/stderr, then the exit code."""
        body = request.json()
        config = _exec_config(body)
        timeout = _exec_timeout(body)
        container = quote_segment(request.params["id"])
        created = self.docker.request("POST", f"/containers/{container}/exec", body=config)
        exec_id = created["Id"]
        source = self.docker.open_stream(
            "POST", f"/exec/{exec_id}/start", body={"Detach": False, "Tty": False}, upgrade=True
        )
        writer = request.stream()
        try:
            try:
                finished = relay(source, writer, FrameDecoder(), False, time.monotonic() + timeout)
            except OSError:  # a write failed: the client left, as surely as a readable close
                finished = False
            source.close()
            if finished:
                writer.write_json({"exit_code": self._exit_code(exec_id), "timed_out": False})
                return
            killed = self._kill(exec_id)  # timed out, or its client left: nobody reads it
            log.info("exec %s stopped before its end; killed: %s", exec_id[:12], killed)
            if not writer.client_gone():
                writer.write_json({"exit_code": None, "timed_out": True, "killed": killed})
        except OSError:
            pass  # the client left while the last line was written
        except DockerError as error:
            _write_error(writer, error)
        finally:
            source.close()
            writer.close()

    def _exit_code(self, exec_id: str) -> int | None:
        # the engine may report the stream's end a moment before it records the exit
        for _ in range(50):
            state = self.docker.request("GET", f"/exec/{exec_id}/json")
            if not state.get("Running"):
                return state.get("ExitCode")
            time.sleep(0.02)
        return None

    def _kill(self, exec_id: str) -> bool:
        """Kill an exec's processes; the Engine API has no call for it."""
        # The engine marks an exec running before it records the Pid (0 until then): on a busy
        # host the process can print and lose its client inside that window, so wait for it.
        deadline = time.monotonic() + PID_WAIT_S
        while True:
            state = self.docker.request("GET", f"/exec/{exec_id}/json")
            if not state.get("Running"):
                return False  # ended: its old Pid may already belong to another process
            if state.get("Pid"):
                return kill_process_group(state["Pid"])
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def kill_process_group(pid: int | None) -> bool:
    """SIGKILL an exec's process and its children (runc makes it a group leader)."""
    if not pid or pid <= 0:
        return False
    with contextlib.suppress(OSError):
        # only a group the exec leads: never the container's own group
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
        return True
    return False


def _write_error(writer: StreamWriter, error: DockerError) -> None:
    with contextlib.suppress(OSError):
        writer.write_json({"error": from_docker(error).body()})


def _exec_config(body: dict[str, Any]) -> dict[str, Any]:
    argv, user, workdir, env = (body.get(k) for k in ("argv", "user", "workdir", "env"))
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise invalid("argv: must be a non-empty list of strings; no shell is involved")
    config: dict[str, Any] = {"AttachStdout": True, "AttachStderr": True, "Cmd": argv}
    for field, key, value in (("user", "User", user), ("workdir", "WorkingDir", workdir)):
        if value is not None:
            if not isinstance(value, str):
                raise invalid(f"{field}: must be a string", field=field)
            config[key] = value
    if env is not None:
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in env.items()
        ):
            raise invalid("env: must be an object of string keys and values", field="env")
        config["Env"] = [f"{key}={value}" for key, value in env.items()]
    return config


def _exec_timeout(body: dict[str, Any]) -> float:
    timeout = body.get("timeout_s", 60)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise invalid("timeout_s: must be a number of seconds", field="timeout_s")
    if not 0 < timeout <= MAX_EXEC_TIMEOUT_S:
        raise invalid(f"timeout_s: must be in (0, {MAX_EXEC_TIMEOUT_S}]", field="timeout_s")
    return float(timeout)
