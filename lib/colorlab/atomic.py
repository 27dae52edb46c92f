"""Atomic writes: every file colorlab writes goes to a temporary name beside its target, then is renamed.

An interrupted run leaves either the old file or the new one, never half of
one. `writing(path)` is the one mechanism; the helpers below cover the usual
payloads (text, bytes, torch objects, matplotlib figures) and `replacing_dir`
does the same for a folder of files (Cheng's pixel samples, a dataset).
`exclusive(lock)` makes processes that would build the same thing take turns.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` (mode 0644), on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes files private; results and weights are meant to be read
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> Path:
    with writing(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    with writing(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def save_torch(obj: Any, path: str | Path) -> Path:
    """`torch.save` of `obj`, atomically: a crash leaves the old file whole."""
    import torch

    with writing(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    with writing(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    return Path(path)


@contextlib.contextmanager
def replacing_dir(folder: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `folder`; on success it replaces `folder` whole."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        yield tmp
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def exclusive(lock: str | Path, waiting: str | None = None) -> Iterator[None]:
    """Hold an exclusive POSIX `flock` on the file `lock` (made when missing) for the block: two processes
    that would build the same folder take turns, and the second finds it built. `waiting` is printed when
    another process holds it. Without `fcntl` (not POSIX) it holds nothing."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                print(waiting, file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
