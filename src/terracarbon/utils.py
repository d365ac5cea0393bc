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
