"""Make small real images on the local Docker engine without any public registry."""

from __future__ import annotations

import contextlib
import io
import subprocess
import tarfile
import uuid
from pathlib import Path

import docker


def tiny_rootfs(message: bytes) -> bytes:
    """A tar holding one file: enough for `docker import` to make an image."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("message.txt")
        info.size = len(message)
        archive.addfile(info, io.BytesIO(message))
    return buffer.getvalue()


def make_image(client: docker.DockerClient, message: bytes) -> str:
    """Import a one-file image named spectr-test-<random>:v1 and return its reference."""
    reference = f"spectr-test-{uuid.uuid4().hex[:10]}:v1"
    repository, tag = reference.split(":")
    client.api.import_image_from_data(tiny_rootfs(message), repository=repository, tag=tag)
    return reference


def save_image(client: docker.DockerClient, reference: str, target: Path) -> Path:
    """`docker save` an image into a file, streaming."""
    with target.open("wb") as handle:
        for chunk in client.images.get(reference).save(named=True):
            handle.write(chunk)
    return target


def remove_image(client: docker.DockerClient, reference: str) -> None:
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(reference, force=True)


# A program that says it runs and then waits: a whole image in ~800 KB, built from the
# machine's own compiler and static libc (no base image needed from anywhere).
SERVICE_SOURCE = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) {
    puts("spectr-test-service: running");
    fflush(stdout);
    for (;;) pause();
}
"""


def make_runnable_image(client: docker.DockerClient, folder: Path) -> str:
    """Import a runnable one-binary image named spectr-test-svc-<random>:v1; return it."""
    source, binary = folder / "service.c", folder / "service"
    source.write_text(SERVICE_SOURCE)
    subprocess.run(
        ["gcc", "-static", "-Os", "-s", "-o", str(binary), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(binary, arcname="service")
    reference = f"spectr-test-svc-{uuid.uuid4().hex[:10]}:v1"
    repository, tag = reference.split(":")
    client.api.import_image_from_data(
        buffer.getvalue(), repository=repository, tag=tag, changes=['CMD ["/service"]']
    )
    return reference
