"""The tiled prediction engine: one streaming, resumable way to turn a model into a map.

Every map terracarbon makes (biomass, land cover, tree cover) goes through :func:`predict_raster`:

* **Windows.** The input GeoTIFF is cut into ``tile_size`` tiles that overlap by ``overlap`` pixels
  (:class:`TileGrid`). Tiles are read window by window (tiles past the edge are zero-padded) and batched.
* **Blending.** The model's K-channel output of each tile is weighted by a ramp that falls towards the tile border and
  accumulated; dividing by the summed weights blends neighbouring tiles, so no seam shows.
* **Streaming.** Tiles are processed row by row. Once a tile row is done, the strip of ``stride`` rows above the next
  tile row can no longer change: it is finalised (``finalize``: e.g. argmax for classes) and written. Memory is one
  batch of tiles plus a strip buffer of ``tile_size`` rows, independent of the raster's height.
* **Nodata.** Input pixels that equal the input nodata value in any band, or are not finite, are fed to the model as 0
  and written as the output nodata value.
* **Output.** Strips go into a hidden compressed GeoTIFF beside the output; at the end it is copied into a
  cloud-optimised GeoTIFF (tiled, DEFLATE, overviews) with CRS, transform, band descriptions, colour table and class
  names, and moved onto the output path atomically. A failed run never leaves a half-written output.
* **Resume.** After each strip, the engine records how many tile rows are done and the overlap rows of the blend
  buffer. A rerun with the same input, model and options continues from there; the result is byte-identical to an
  uninterrupted run.
* **Backends.** ``eager`` (PyTorch), ``channels-last`` (PyTorch with NHWC memory format, faster on CPU) and ``onnx``
  (exported once, cached beside the checkpoint, run with onnxruntime). All give the same map within 1e-3.
* **Scale-out.** With ``scheduler`` (a Dask scheduler address, a ``distributed.Client``, or ``"local:N"`` for a
  LocalCluster of N workers) each batch of tiles is a Dask task. The model is scattered once to every worker; results
  come back in order to one writer, so the output is byte-identical to the single-process one. A lost worker's tasks
  are retried by Dask.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.windows import Window
from torch import nn

from terracarbon.errors import ConfigError, InputError
from terracarbon.raster.io import _decorate, open_raster, to_cog
from terracarbon.utils import atomic_path, atomic_write_json, progress

BACKENDS = ("eager", "channels-last", "onnx")

# ----------------------------------------------------------------------------------------------------------- predictor


def _identity_finalize(x: np.ndarray) -> np.ndarray:
    return x


@dataclass
class TilePredictor:
    """A model plus everything needed to turn its tile outputs into map bands.

    ``model`` maps a normalised float32 batch ``B×C×H×W`` to ``B×K×H×W`` (K = ``out_channels``). ``finalize`` maps the
    blended ``K×h×w`` float32 array of a strip to the ``out_count×h×w`` bands written (identity by default).
    ``in_bands`` are the 1-based input bands to read (default: all); ``mean``/``std`` normalise them.
    """

    model: nn.Module
    out_channels: int = 1
    in_bands: Sequence[int] | None = None
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    finalize: Callable[[np.ndarray], np.ndarray] | None = None
    out_count: int | None = None
    out_dtype: str = "float32"
    out_nodata: float | int | None = -9999.0
    band_descriptions: Sequence[str] | None = None
    colormap: Mapping[int, Sequence[int]] | None = None
    class_names: Sequence[str] | None = None
    tags: Mapping[str, Any] = field(default_factory=dict)
    onnx_cache: Path | None = None

    def __post_init__(self) -> None:
        if self.out_count is None:
            self.out_count = self.out_channels if self.finalize is None else 1
        if self.mean is not None and self.std is not None and len(self.mean) != len(self.std):
            raise ConfigError("mean and std must have one value per input band")

    @property
    def in_channels(self) -> int | None:
        """Number of input bands the model expects, where known."""
        if self.in_bands is not None:
            return len(self.in_bands)
        if self.mean is not None:
            return len(self.mean)
        return None

    @classmethod
    def for_regression(
        cls,
        model: nn.Module,
        *,
        scale: float = 1.0,
        offset: float = 0.0,
        clip_min: float | None = 0.0,
        band_name: str = "prediction",
        extra_bands: Sequence[str] = (),
        **kwargs: Any,
    ) -> TilePredictor:
        """Continuous output: band 1 is ``model * scale + offset`` clipped at ``clip_min``.

        A model with more output channels (e.g. a predicted standard deviation) writes them as extra bands named by
        ``extra_bands``, scaled by ``scale`` too.
        """
        k = 1 + len(extra_bands)

        def finalize(x: np.ndarray) -> np.ndarray:
            y = x[:k] * np.float32(scale)
            y[0] += np.float32(offset)
            if clip_min is not None:
                np.maximum(y, np.float32(clip_min), out=y)
            return y

        kwargs.setdefault("out_nodata", -9999.0)
        return cls(
            model=model,
            out_channels=k,
            finalize=finalize,
            out_count=k,
            band_descriptions=[band_name, *extra_bands],
            **kwargs,
        )

    @classmethod
    def for_segmentation(
        cls,
        model: nn.Module,
        *,
        class_names: Sequence[str],
        colormap: Mapping[int, Sequence[int]] | None = None,
        nodata: int = 255,
        **kwargs: Any,
    ) -> TilePredictor:
        """Class maps: blended logits -> argmax, written as a paletted uint8 band with class names."""

        def finalize(x: np.ndarray) -> np.ndarray:
            return np.argmax(x, axis=0)[None].astype(np.uint8)

        cmap = None if colormap is None else {int(k): tuple(v) for k, v in dict(colormap).items()}
        return cls(
            model=model,
            out_channels=len(class_names),
            finalize=finalize,
            out_count=1,
            out_dtype="uint8",
            out_nodata=nodata,
            band_descriptions=["class"],
            colormap=cmap,
            class_names=list(class_names),
            **kwargs,
        )

    def fingerprint(self) -> str:
        """A hash of the weights and of everything that changes the output (used to validate resume state)."""
        h = hashlib.sha256()
        for name, t in self.model.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        h.update(
            json.dumps(
                [
                    self.out_channels,
                    self.in_bands,
                    self.mean,
                    self.std,
                    self.out_dtype,
                    self.out_nodata,
                    self.out_count,
                ],
                default=str,
            ).encode()
        )
        return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------------- grid


@dataclass(frozen=True)
class TileGrid:
    """Overlapping tiles over a ``height × width`` raster: tile rows/cols start every ``stride`` pixels."""

    height: int
    width: int
    tile_size: int
    overlap: int

    def __post_init__(self) -> None:
        if self.tile_size <= 0:
            raise ConfigError("tile size must be positive")
        if not 0 <= self.overlap <= self.tile_size // 2:
            raise ConfigError(f"overlap must be between 0 and half the tile size ({self.tile_size // 2})")

    @property
    def stride(self) -> int:
        return self.tile_size - self.overlap

    @staticmethod
    def _count(n: int, tile: int, stride: int, overlap: int) -> int:
        return max(1, -(-max(n - overlap, 1) // stride))

    @property
    def n_rows(self) -> int:
        return self._count(self.height, self.tile_size, self.stride, self.overlap)

    @property
    def n_cols(self) -> int:
        return self._count(self.width, self.tile_size, self.stride, self.overlap)

    def __len__(self) -> int:
        return self.n_rows * self.n_cols

    def window(self, row: int, col: int) -> Window:
        """The (possibly out-of-bounds) tile window at grid cell (row, col)."""
        return Window(col * self.stride, row * self.stride, self.tile_size, self.tile_size)

    def windows(self) -> Iterator[tuple[int, int, Window]]:
        for r in range(self.n_rows):
            for c in range(self.n_cols):
                yield r, c, self.window(r, c)

    def strip_rows(self, row: int) -> tuple[int, int]:
        """Raster rows [r0, r1) that are final once tile row ``row`` is done."""
        r0 = row * self.stride
        r1 = self.height if row == self.n_rows - 1 else min(self.height, (row + 1) * self.stride)
        return r0, r1

    def blend_weights(self) -> np.ndarray:
        """``tile×tile`` float32 weights: 1 inside, a linear ramp over the ``overlap`` border, never 0."""
        t = self.tile_size
        idx = np.arange(t, dtype=np.float32)
        if self.overlap == 0:
            w1 = np.ones(t, np.float32)
        else:
            w1 = np.minimum(1.0, np.minimum(idx + 0.5, t - idx - 0.5) / self.overlap).astype(np.float32)
        return np.outer(w1, w1)


# ------------------------------------------------------------------------------------------------------------- runners


class _Runner:
    """Runs the model on a float32 numpy batch with one backend."""

    def __init__(self, predictor: TilePredictor, backend: str, device: str = "cpu"):
        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.backend = backend
        self.device = torch.device(device)
        self.model = predictor.model.eval().to(self.device)
        self.session = None
        if backend == "channels-last":
            self.model = self.model.to(memory_format=torch.channels_last)
        elif backend == "onnx":
            self.session = _onnx_session(predictor)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.session is not None:
            (y,) = self.session.run(None, {"input": x})
            return y
        with torch.inference_mode():
            t = torch.from_numpy(x).to(self.device)
            if self.backend == "channels-last":
                t = t.contiguous(memory_format=torch.channels_last)
            y = self.model(t)
            if isinstance(y, (tuple, list)):
                y = y[0]
            return y.float().cpu().numpy()


_ONNX_LOCK = threading.Lock()


def _onnx_session(predictor: TilePredictor):
    """Export the model to ONNX once (cached beside the checkpoint, keyed by weights) and open an onnxruntime session."""
    import tempfile

    import onnxruntime as ort

    fp = predictor.fingerprint()
    cache = predictor.onnx_cache or Path(tempfile.gettempdir()) / "terracarbon-onnx" / f"{fp}.onnx"
    cache = Path(cache)
    stamp = cache.with_name(cache.name + ".json")
    with _ONNX_LOCK:
        fresh = cache.exists() and stamp.exists() and json.loads(stamp.read_text()).get("fingerprint") == fp
        if not fresh:
            c = predictor.in_channels
            if c is None:
                raise ConfigError("the onnx backend needs the number of input bands (in_bands or mean/std)")
            dummy = torch.zeros(1, c, 64, 64)
            model = predictor.model.eval().cpu()
            with atomic_path(cache, suffix=".onnx") as tmp:
                torch.onnx.export(
                    model,
                    (dummy,),
                    str(tmp),
                    input_names=["input"],
                    output_names=["output"],
                    dynamic_axes={
                        "input": {0: "batch", 2: "height", 3: "width"},
                        "output": {0: "batch", 2: "height", 3: "width"},
                    },
                    opset_version=17,
                    dynamo=False,
                )
            atomic_write_json(stamp, {"fingerprint": fp})
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    providers = [
        p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()
    ]
    return ort.InferenceSession(str(cache), sess_options=opts, providers=providers)


# ---------------------------------------------------------------------------------------------------------- tile work


def _read_tiles(ds, predictor: TilePredictor, windows: Sequence[Window]) -> tuple[np.ndarray, np.ndarray]:
    """Read, mask and normalise a batch of (possibly out-of-bounds) windows -> (x B×C×t×t, valid B×t×t)."""
    bands = list(predictor.in_bands) if predictor.in_bands is not None else list(range(1, ds.count + 1))
    t = int(windows[0].height)
    x = np.zeros((len(windows), len(bands), t, t), np.float32)
    valid = np.zeros((len(windows), t, t), bool)
    nodatas = [ds.nodatavals[b - 1] for b in bands]
    mean = None if predictor.mean is None else np.asarray(predictor.mean, np.float32)[:, None, None]
    std = None if predictor.std is None else np.asarray(predictor.std, np.float32)[:, None, None]
    for i, w in enumerate(windows):
        r0, c0 = max(0, int(w.row_off)), max(0, int(w.col_off))
        r1, c1 = min(ds.height, int(w.row_off + w.height)), min(ds.width, int(w.col_off + w.width))
        if r1 <= r0 or c1 <= c0:
            continue
        data = ds.read(bands, window=Window(c0, r0, c1 - c0, r1 - r0), out_dtype="float32")
        ok = np.isfinite(data).all(axis=0)
        for b, nd in enumerate(nodatas):
            if nd is not None and np.isfinite(nd):
                ok &= data[b] != np.float32(nd)
        if mean is not None:
            data -= mean
        if std is not None:
            data /= std
        data[:, ~ok] = 0.0
        dr, dc = r0 - int(w.row_off), c0 - int(w.col_off)
        x[i, :, dr : dr + r1 - r0, dc : dc + c1 - c0] = data
        valid[i, dr : dr + r1 - r0, dc : dc + c1 - c0] = ok
    return x, valid


_WORKER_RUNNERS: dict[tuple[int, str], _Runner] = {}


def _predict_batch(
    predictor: TilePredictor,
    src: str,
    windows: list[Window],
    backend: str,
    device: str = "cpu",
    threads: int = 1,
):
    """Dask task: read and predict one batch of tiles; the runner is built once per worker process and predictor.

    The worker uses ``threads`` torch threads: the same count as the client's process by default, because CPU kernels
    may sum in a different order with another thread count, and the output would then differ in the last bit.
    """
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    key = (id(predictor), backend)
    runner = _WORKER_RUNNERS.get(key)
    if runner is None:
        runner = _WORKER_RUNNERS[key] = _Runner(predictor, backend, device)
    with rasterio.open(src) as ds:
        x, valid = _read_tiles(ds, predictor, windows)
    return runner(x), valid


# ------------------------------------------------------------------------------------------------------------- engine


@dataclass
class _State:
    """What a rerun needs to continue: tile rows done and the blend buffer's overlap rows."""

    path: Path
    fingerprint: str

    @property
    def json_path(self) -> Path:
        return self.path.with_name(self.path.name + ".json")

    @property
    def npz_path(self) -> Path:
        return self.path.with_name(self.path.name + ".npz")

    def load(self) -> tuple[int, dict[str, np.ndarray] | None]:
        try:
            meta = json.loads(self.json_path.read_text())
        except (OSError, ValueError):
            return 0, None
        if meta.get("fingerprint") != self.fingerprint or not self.path.exists():
            return 0, None
        done = int(meta.get("rows_done", 0))
        if done == 0:
            return 0, None
        try:
            with np.load(self.npz_path) as z:
                return done, {k: z[k] for k in z.files}
        except (OSError, ValueError):
            return 0, None

    def save(self, rows_done: int, tail: dict[str, np.ndarray]) -> None:
        with atomic_path(self.npz_path, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **tail)
        atomic_write_json(self.json_path, {"fingerprint": self.fingerprint, "rows_done": rows_done})

    def clear(self) -> None:
        for p in (self.path, self.json_path, self.npz_path):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def _batches(grid: TileGrid, row: int, batch_size: int) -> list[list[Window]]:
    wins = [grid.window(row, c) for c in range(grid.n_cols)]
    return [wins[i : i + batch_size] for i in range(0, len(wins), batch_size)]


def predict_raster(
    predictor: TilePredictor,
    src_path: str | Path,
    dst_path: str | Path,
    *,
    tile_size: int = 256,
    overlap: int = 32,
    batch_size: int = 8,
    backend: str = "eager",
    resume: bool = True,
    progress_bar: bool = True,
    scheduler: Any = None,
    device: str | None = None,
    worker_threads: int | None = None,
    on_strip: Callable[[int, int], None] | None = None,
) -> Path:
    """Predict ``src_path`` tile by tile with ``predictor`` and write a cloud-optimised GeoTIFF to ``dst_path``.

    Args:
        predictor: model and output description (:class:`TilePredictor`).
        src_path: input GeoTIFF (must have a CRS; band count must match the model's input).
        dst_path: output GeoTIFF; written atomically once everything is done.
        tile_size, overlap, batch_size: tiling; tiles overlap by ``overlap`` px on each side and are blended.
        backend: ``"eager"``, ``"channels-last"`` or ``"onnx"``.
        resume: continue an interrupted run with the same inputs and options (otherwise start over).
        progress_bar: show a rich progress bar.
        scheduler: None (this process), a Dask ``Client``, a scheduler address ``"tcp://..."``, or ``"local:N"``.
        device: torch device (default: CUDA when available, else CPU).
        worker_threads: torch threads per Dask worker; default: this process's count, which makes the Dask output
            byte-identical to the single-process one (another count may change the last bit of float outputs).
        on_strip: called as ``on_strip(rows_done, n_rows)`` after each strip is safely on disk.

    Returns:
        The output path.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if batch_size < 1:
        raise ConfigError("batch size must be at least 1")
    src_path, dst_path = Path(src_path), Path(dst_path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    with open_raster(src_path) as ds:
        need = predictor.in_channels
        if predictor.in_bands is not None and max(predictor.in_bands) > ds.count:
            raise InputError(
                src_path, f"has {ds.count} band(s) but the model reads band {max(predictor.in_bands)}"
            )
        if predictor.in_bands is None and need is not None and ds.count != need:
            raise InputError(src_path, f"has {ds.count} band(s) but the model expects {need}")
        height, width, crs, transform = ds.height, ds.width, ds.crs, ds.transform
    grid = TileGrid(height, width, tile_size, overlap)

    fp = hashlib.sha256(
        json.dumps(
            [
                predictor.fingerprint(),
                str(src_path.resolve()),
                os.stat(src_path).st_size,
                os.stat(src_path).st_mtime_ns,
                tile_size,
                overlap,
                batch_size,
                backend,
            ]
        ).encode()
    ).hexdigest()[:16]
    state = _State(dst_path.with_name(f".{dst_path.name}.partial.tif"), fp)
    rows_done, tail = state.load() if resume else (0, None)
    if rows_done == 0:
        state.clear()
        _create_partial(state.path, predictor, height, width, crs, transform, grid.stride)

    k, t, stride, ov = predictor.out_channels, grid.tile_size, grid.stride, grid.overlap
    wpad = grid.n_cols * stride + ov
    acc = np.zeros((k, t, wpad), np.float32)
    wsum = np.zeros((t, wpad), np.float32)
    valid = np.zeros((t, wpad), bool)
    if tail is not None:
        acc[:, :ov], wsum[:ov], valid[:ov] = tail["acc"], tail["wsum"], tail["valid"]
    weights = grid.blend_weights()

    threads = worker_threads or torch.get_num_threads()
    results = _result_stream(
        predictor, src_path, grid, rows_done, batch_size, backend, device, scheduler, threads
    )
    with progress(disable=not progress_bar) as bar:
        task = bar.add_task(f"predict {src_path.name}", total=len(grid), completed=rows_done * grid.n_cols)
        try:
            for row in range(rows_done, grid.n_rows):
                for batch in _batches(grid, row, batch_size):
                    y, ok = next(results)
                    if y.shape[1] < k:
                        raise ConfigError(f"model returned {y.shape[1]} channels, predictor expects {k}")
                    for i, w in enumerate(batch):
                        c0 = int(w.col_off)
                        acc[:, :, c0 : c0 + t] += y[i, :k] * weights
                        wsum[:, c0 : c0 + t] += weights
                        valid[:, c0 : c0 + t] |= ok[i]
                    bar.advance(task, len(batch))
                r0, r1 = grid.strip_rows(row)
                _write_strip(state.path, predictor, acc, wsum, valid, r0, r1, width)
                # shift the buffer: the overlap rows below the strip carry into the next tile row
                acc[:, :ov], wsum[:ov], valid[:ov] = acc[:, stride:], wsum[stride:], valid[stride:]
                acc[:, ov:], wsum[ov:], valid[ov:] = 0.0, 0.0, False
                state.save(row + 1, {"acc": acc[:, :ov], "wsum": wsum[:ov], "valid": valid[:ov]})
                if on_strip is not None:
                    on_strip(row + 1, grid.n_rows)
        finally:
            with contextlib.suppress(Exception):
                results.close()
    with atomic_path(dst_path, suffix=".tif") as tmp:
        to_cog(state.path, tmp)
    state.clear()
    return dst_path


def predict_checkpoint(
    checkpoint: str | Path,
    src_path: str | Path,
    dst_path: str | Path,
    *,
    validate: Callable[[dict[str, Any], dict[str, Any]], Mapping[str, Any] | None] | None = None,
    tags: Mapping[str, Any] | None = None,
    track: bool = True,
    run_dir: str | Path | None = None,
    run_name: str = "predict",
    **engine_kwargs: Any,
) -> Path:
    """Predict a raster with a terracarbon checkpoint: the one entry point every domain's ``predict`` uses.

    Loads the checkpoint once, lets ``validate(spec, meta)`` reject a model of the wrong kind (raise
    :class:`InputError`; it may return extra output tags), builds its :class:`TilePredictor` (finalize chosen by the checkpoint's task), adds ``tags`` to
    the output, and runs :func:`predict_raster` (``engine_kwargs``: tile_size, overlap, batch_size, backend, resume,
    progress_bar, scheduler, device, on_strip) with the run's energy and CO2e recorded in ``run_dir`` (default
    ``<dst folder>/<dst stem>.run/``).
    """
    from terracarbon.footprint.track import tracked
    from terracarbon.models.registry import load_checkpoint, predictor_from_loaded

    checkpoint, dst_path = Path(checkpoint), Path(dst_path)
    model, spec, meta = load_checkpoint(checkpoint)
    extra = (validate(spec, meta) if validate is not None else None) or {}
    predictor = predictor_from_loaded(  # bands selected from the input by name
        model, meta, onnx_cache=checkpoint.with_suffix(".onnx"), source=checkpoint, stack=src_path
    )
    predictor.tags = {**dict(predictor.tags), "model": checkpoint.name, **dict(tags or {}), **dict(extra)}
    rd = Path(run_dir) if run_dir is not None else dst_path.parent / f"{dst_path.stem}.run"
    with tracked(rd, run_name, enabled=track):
        return predict_raster(predictor, src_path, dst_path, **engine_kwargs)


def _create_partial(
    path: Path, predictor: TilePredictor, height, width, crs, transform, rows_per_strip: int
) -> None:
    profile = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": predictor.out_count,
        "dtype": predictor.out_dtype,
        "crs": crs,
        "transform": transform,
        "nodata": predictor.out_nodata,
        "compress": "DEFLATE",
        "tiled": False,
        "blockysize": min(rows_per_strip, height),
        "BIGTIFF": "IF_SAFER",
    }
    tags = dict(predictor.tags)
    if predictor.class_names is not None:
        tags["class_names"] = list(predictor.class_names)
    with rasterio.open(path, "w", **profile) as dst:
        _decorate(dst, predictor.band_descriptions, predictor.colormap, tags)


def _write_strip(
    path: Path, predictor: TilePredictor, acc, wsum, valid, r0: int, r1: int, width: int
) -> None:
    h = r1 - r0
    blended = acc[:, :h, :width] / wsum[None, :h, :width]
    out = (predictor.finalize or _identity_finalize)(blended)
    out = np.asarray(out).astype(predictor.out_dtype, copy=False)
    if predictor.out_nodata is not None:
        out[:, ~valid[:h, :width]] = predictor.out_nodata
    with rasterio.open(path, "r+") as dst:
        dst.write(out, window=Window(0, r0, width, h))


def _result_stream(predictor, src_path, grid, first_row, batch_size, backend, device, scheduler, threads):
    """Yield (outputs, valid) per batch, in order, from this process (reads prefetched in a thread) or Dask."""
    todo = [b for row in range(first_row, grid.n_rows) for b in _batches(grid, row, batch_size)]
    if scheduler is None:
        yield from _local_stream(predictor, src_path, todo, backend, device)
    else:
        yield from _dask_stream(predictor, src_path, todo, backend, scheduler, threads)


def _local_stream(predictor, src_path, todo, backend, device):
    runner = _Runner(predictor, backend, device)
    with rasterio.open(src_path) as ds, ThreadPoolExecutor(1) as pool:
        nxt = pool.submit(_read_tiles, ds, predictor, todo[0]) if todo else None
        for i in range(len(todo)):
            x, ok = nxt.result()
            if i + 1 < len(todo):
                nxt = pool.submit(_read_tiles, ds, predictor, todo[i + 1])
            yield runner(x), ok


@contextlib.contextmanager
def dask_client(scheduler: Any):
    """A ``distributed.Client`` for ``scheduler``: a Client (used as is), ``"tcp://host:port"``, or ``"local:N"``."""
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        yield scheduler
        return
    if isinstance(scheduler, str) and scheduler.startswith("local"):
        n = int(scheduler.partition(":")[2] or 2)
        with LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            with Client(cluster) as client:
                yield client
        return
    with Client(scheduler) as client:
        yield client


def _dask_stream(predictor, src_path, todo, backend, scheduler, threads):
    with dask_client(scheduler) as client:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        model_future = client.scatter(predictor, broadcast=True)
        inflight: deque = deque()
        it = iter(todo)

        def submit_next() -> None:
            wins = next(it, None)
            if wins is not None:
                inflight.append(
                    client.submit(
                        _predict_batch,
                        model_future,
                        str(src_path),
                        wins,
                        backend,
                        "cpu",
                        threads,
                        pure=False,
                        retries=3,
                    )
                )

        for _ in range(2 * n_workers + 1):
            submit_next()
        while inflight:
            fut = inflight.popleft()
            result = fut.result()
            submit_next()
            yield result
