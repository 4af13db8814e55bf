"""gunicorn settings of the Spectr portal, in the container image and on bare hosts alike.

Change any of them without editing this file through GUNICORN_CMD_ARGS, which gunicorn reads
after it: e.g. GUNICORN_CMD_ARGS="--bind 127.0.0.1:8000 --workers 4 --threads 16".
"""

import os
import shutil

from portal.web.server_errors import install_in_gunicorn

# A request line over gunicorn's limit (414), oversized headers (431) and malformed requests are
# answered by gunicorn itself; make those answers the API's JSON error, not an HTML page.
install_in_gunicorn()

bind = "0.0.0.0:8000"
worker_class = "gthread"
workers = 2
threads = 8
# Followers of an operation's log (Server-Sent Events) hold a thread, not the worker's timeout.
timeout = 60
graceful_timeout = 30


def on_starting(server):
    """Start with an empty metrics folder, so samples of processes gone do not linger."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder, mode=0o700, exist_ok=True)


def child_exit(server, worker):
    """Drop the live gauges of a worker process that ended (prometheus-client's recipe)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
