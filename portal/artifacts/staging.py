"""Getting a model's files ready to store: from an upload (one file or a tar archive) or from
a folder on the Spectr node. Every file is read in 1 MiB chunks and hashed on the way; nothing
is held in memory, and an archive is unpacked as it is read (no second copy of the tar)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import IO, Any

from portal.artifacts.oci import CHUNK, StagedFile, sha256_file
from portal.core.uploads import receive_body, uploads_folder

MAX_FILES = 10_000
ARCHIVE_TYPES = ("application/x-tar", "application/gzip", "application/x-gtar")
Progress = Callable[[int, str], None]


class StagingError(ValueError):
    """The files given are not a model Spectr can store; the message says why."""


def safe_relative_path(name: str) -> str:
    """A model file's path as stored: POSIX, relative, no `..`, no control characters."""
    while name.startswith("./"):  # tar -C folder . writes ./config.json
        name = name[2:]
    path = PurePosixPath(name)
    parts = path.parts
    if (
        not parts
        or path.is_absolute()
        or any(part in ("", ".", "..") for part in parts)
        or len(name) > 1000
        or any(ord(ch) < 32 for ch in name)
    ):
        raise StagingError(f"'{name}' is not a relative path inside the model folder.")
    return path.as_posix()


def receive_upload(stream: IO[bytes], expected_size: int | None, filename: str) -> Path:
    """Write a request body into a new folder under the instance's uploads, chunk by chunk."""
    target_dir = uploads_folder() / f"model-{uuid.uuid4().hex}"
    target_dir.mkdir(mode=0o700)
    target = target_dir / PurePosixPath(filename).name
    try:
        receive_body(stream, expected_size, target, "model file or tar archive of the model folder")
    except BaseException:
        shutil.rmtree(target_dir, ignore_errors=True)
        raise
    return target


def stage_single_file(path: Path, name: str, progress: Progress) -> list[StagedFile]:
    """One uploaded file (a GGUF, say) is the whole model."""
    relative = safe_relative_path(name)
    return [StagedFile(relative, path, sha256_file(path, progress), path.stat().st_size)]


def stage_archive(archive: Path, into: Path, progress: Progress) -> list[StagedFile]:
    """Unpack a tar (optionally compressed) of a model folder, hashing each file as it lands.

    Only regular files are taken (links, devices and the like are refused), every name is
    checked, and a common top folder (`llama/config.json`, `llama/model.gguf`) is dropped.
    """
    staged: list[StagedFile] = []
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                if member.isdir():
                    continue
                if not member.isfile():
                    raise StagingError(f"'{member.name}' in the archive is not a regular file.")
                if len(staged) >= MAX_FILES:
                    raise StagingError(f"The archive holds more than {MAX_FILES} files.")
                relative = safe_relative_path(member.name)
                source = tar.extractfile(member)
                assert source is not None  # a regular file always has content
                chunks = iter(lambda source=source: source.read(CHUNK), b"")
                staged.append(write_hashed(chunks, into / relative, relative, progress))
    except tarfile.TarError as exc:
        raise StagingError(f"The upload is not a readable tar archive: {exc}.") from None
    return _without_common_folder(_not_hidden(staged))


def stage_folder(folder: Path, progress: Progress) -> list[StagedFile]:
    """Every regular file under a folder on the Spectr node, hashed in place (no copy)."""
    if not folder.is_dir():
        raise StagingError(f"{folder} is not a folder on the Spectr node.")
    staged: list[StagedFile] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            local = Path(root) / name
            if name.startswith(".") or not local.is_file() or local.is_symlink():
                continue
            if len(staged) >= MAX_FILES:
                raise StagingError(f"{folder} holds more than {MAX_FILES} files.")
            relative = safe_relative_path(local.relative_to(folder).as_posix())
            staged.append(
                StagedFile(relative, local, sha256_file(local, progress), local.stat().st_size)
            )
    if not staged:
        raise StagingError(f"{folder} holds no files.")
    return staged


def write_hashed(
    chunks: Iterable[bytes], target: Path, relative: str, progress: Progress
) -> StagedFile:
    """Write a file from chunks, hashing it as it is written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with target.open("xb") as handle:
        for chunk in chunks:
            handle.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            progress(len(chunk), f"unpacking {relative}")
    return StagedFile(relative, target, "sha256:" + digest.hexdigest(), size)


def stage_remote(remote: Any, into: Path, progress: Progress) -> list[StagedFile]:
    """Download every file of a remote model into `into`, hashing each on the way; a file the
    source vouches for (a Hub LFS sha256, a registry digest) must match it."""
    staged: list[StagedFile] = []
    for item in remote.files():
        relative = safe_relative_path(item.path)
        target = into / relative
        target.unlink(missing_ok=True)  # a retry starts the file again
        got = write_hashed(remote.chunks(item), target, relative, progress)
        if item.sha256 and got.digest != item.sha256:
            raise StagingError(
                f"{relative}: the source says {item.sha256}, the bytes are {got.digest}."
            )
        if item.size is not None and got.size != item.size:
            raise StagingError(f"{relative}: the source says {item.size} bytes, {got.size} came.")
        staged.append(got)
    return _not_hidden(staged)


def _not_hidden(staged: list[StagedFile]) -> list[StagedFile]:
    # macOS tar adds ._name files, git checkouts .gitattributes: none belongs to a model.
    kept = [f for f in staged if not any(p.startswith(".") for p in f.path.split("/"))]
    if not kept:
        raise StagingError("The archive holds no model files.")
    return kept


def _without_common_folder(staged: list[StagedFile]) -> list[StagedFile]:
    tops = {f.path.split("/", 1)[0] for f in staged}
    if len(tops) != 1 or any("/" not in f.path for f in staged):
        return staged
    return [StagedFile(f.path.split("/", 1)[1], f.local, f.digest, f.size) for f in staged]
