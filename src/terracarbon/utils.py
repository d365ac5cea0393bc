"""Small shared helpers: atomic writes, seeding, progress bars, run folders."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextlib.contextmanager
def atomic_path(dst: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``dst``; move it onto ``dst`` only if the block succeeds.

    The temporary file lives in the same folder so that :func:`os.replace` is atomic. On any exception the temporary
    file is removed and ``dst`` is left exactly as it was (absent or with its old content).
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    suffix = dst.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=f".tmp{suffix}", dir=dst.parent)
    os.close(fd)
    os.unlink(tmp)  # writers (GDAL, torch, sqlite) create the file themselves
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dst)
    except BaseException:
        for p in (tmp_path, *tmp_path.parent.glob(tmp_path.name + ".*")):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


@contextlib.contextmanager
def output_lock(dst: str | Path) -> Iterator[Path]:
    """Hold ``.<name>.lock`` beside ``dst`` while a run writes it; a second live writer fails at once.

    The lock file is created with ``O_CREAT | O_EXCL`` and holds the owner's PID, host and command line. A lock left by
    a process that no longer exists on this host (killed, crashed) is stale and taken over, so an interrupted run
    can be resumed. Raises :class:`terracarbon.errors.BusyError`, naming the other process, while its owner lives.
    """
    import socket
    import sys

    from terracarbon.errors import BusyError

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    lock = dst.with_name(f".{dst.name}.lock")
    me = {"pid": os.getpid(), "host": socket.gethostname(), "cmd": " ".join(sys.argv)[:300]}
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                other = json.loads(lock.read_text(encoding="utf-8") or "{}")
            except (OSError, ValueError):
                other = {}
            pid = int(other.get("pid", 0) or 0)
            same_host = other.get("host") in (None, me["host"])
            if pid and (not same_host or _pid_alive(pid)):
                raise BusyError(
                    f"{dst}: already being written by process {pid} on {other.get('host', '?')} "
                    f"({other.get('cmd', '?')}); wait for it, or remove {lock} if that process is gone"
                ) from None
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()  # stale: its owner is dead
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(me, fh)
        break
    else:  # pragma: no cover - lost the race three times
        raise BusyError(f"{dst}: could not take the lock {lock}")
    try:
        yield lock
    finally:
        with contextlib.suppress(FileNotFoundError):
            if json.loads(lock.read_text(encoding="utf-8") or "{}").get("pid") == me["pid"]:
                lock.unlink()


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (_dt.datetime, _dt.date)):
        return o.isoformat()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def to_json(obj: Any, indent: int | None = 2) -> str:
    """``json.dumps`` that understands numpy scalars/arrays, paths and dates."""
    return json.dumps(obj, indent=indent, default=_json_default)


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as pretty JSON to ``path`` atomically."""
    return atomic_write_text(path, to_json(obj) + "\n")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) random generators."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover
        pass


def progress(transient: bool = False, disable: bool = False) -> Progress:
    """A rich progress bar with the project's columns (use as a context manager)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=transient,
        disable=disable,
    )


def run_dir(base: str | Path, name: str) -> Path:
    """Create and return ``base/<UTC timestamp>-<name>`` for one run's records."""
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = Path(base) / f"{stamp}-{name}"
    path.mkdir(parents=True, exist_ok=True)
    return path
