"""Worker processes: the huey consumer plus the ticker, standalone or inside the portal."""

from __future__ import annotations

import logging

from flask import Flask
from huey.consumer import Consumer

from portal.core.ticker import Ticker
from portal.extensions import queue

log = logging.getLogger(__name__)


def run_worker(app: Flask, threads: int | None = None) -> None:
    """Run a worker in this process until it is signalled to stop (`spectr worker`)."""
    ticker = Ticker(app)
    ticker.start()
    consumer = Consumer(
        queue,
        workers=threads or app.config["SPECTR_WORKER_THREADS"],
        worker_type="thread",
        periodic=False,
        check_worker_health=True,
        scheduler_interval=1,
        max_delay=1.0,
    )
    # Said once the process is ready to consume (operators and the compose tests wait for it).
    log.info("worker started with %s threads", consumer.workers)
    try:
        consumer.run()
    finally:
        ticker.stop()


class EmbeddedConsumer(Consumer):
    """A consumer that runs beside the web server: threads only, no signal handlers."""

    def _set_signal_handlers(self) -> None:
        pass


def start_embedded_worker(app: Flask) -> tuple[EmbeddedConsumer, Ticker]:
    """Start worker threads and the ticker in this process (the embedded default)."""
    consumer = EmbeddedConsumer(
        queue,
        workers=app.config["SPECTR_WORKER_THREADS"],
        worker_type="thread",
        periodic=False,
        scheduler_interval=1,
        max_delay=1.0,
    )
    consumer.start()
    ticker = Ticker(app)
    ticker.start()
    log.info("embedded worker started with %s threads", app.config["SPECTR_WORKER_THREADS"])
    return consumer, ticker
