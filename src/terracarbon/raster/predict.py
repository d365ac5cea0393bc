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
* **Output.** Strips go into a hidden uncompressed tiled GeoTIFF beside the output; at the end it is copied into a
  cloud-optimised GeoTIFF (tiled, DEFLATE on every core, overviews) with CRS, transform, band descriptions, colour
  table and class names, and moved onto the output path atomically. A failed run never leaves a half-written output.
* **Threads.** The model runs in the calling thread (PyTorch backends, with all torch threads) or, for onnxruntime
  on CPU, on one single-threaded stream per thread, each taking the next batch as soon as it is free
  (:data:`ORT_STREAMS`). Beside it, a pool of reader threads decodes the windows of the next batches straight into
  the batch array and masks/normalises them in place, and a writer thread blends the outputs, finalises and writes
  the strips and saves the resume state; both mostly wait in GDAL or numpy with the GIL released. Batches are
  blended in submission order, so the file is the same as with a serial loop.
* **Resume.** After each strip, the engine records how many tile rows are done and the overlap rows of the blend
  buffer. A rerun with the same input, model and options continues from there; the result is byte-identical to an
  uninterrupted run.
* **Backends.** ``eager`` (PyTorch), ``channels-last`` (PyTorch with NHWC memory format, faster on CPU) and ``onnx``
  (exported once, cached beside the checkpoint, run with onnxruntime) give the same map within 1e-3.
  ``onnx-int8`` is the ONNX graph statically quantised by onnxruntime (int8 weights, uint8 activations), calibrated
  on tiles of the input raster and cached beside the checkpoint (:func:`quantize_onnx_int8`); ``bf16`` runs PyTorch
  under autocast (bfloat16 on CPU, float16 on CUDA). Their accuracy cost is measured in ``docs/performance.md``.
* **Scale-out.** With ``scheduler`` (a Dask scheduler address, a ``distributed.Client``, or ``"local:N"`` for a
  LocalCluster of N workers) each batch of tiles is a Dask task. The model is scattered once to every worker; results
  come back in order to one writer, so the output is byte-identical to the single-process one. A lost worker's tasks
  are retried by Dask.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
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
from terracarbon.utils import atomic_path, atomic_write_json, output_lock, progress

BACKENDS = ("eager", "channels-last", "onnx", "onnx-int8", "bf16")
# helper threads around the model: window readers (GDAL releases the GIL while decoding) and batches read ahead
READ_THREADS = 2
PREFETCH_BATCHES = 3
# onnxruntime on CPU: batches run concurrently on this many single-threaded streams (None: one per torch thread)
# instead of one at a time on a pool of that many threads. Two-thread kernels wait at every op for their slower
# half, which a reader or writer thread delays whenever it takes a core; independent streams do not wait for each
# other (measured in docs/performance.md). TERRACARBON_ORT_STREAMS overrides it (1: the one-stream engine).
ORT_STREAMS: int | None = None

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
        """A hash of the weights and of everything that changes the output (used to validate resume state).

        Hashing a U-Net's weights takes ~0.1 s; the result is kept until a weight tensor is replaced or modified in
        place (its storage or its version counter changes) or an option changes.
        """
        options = json.dumps(
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
        state = self.model.state_dict()
        key = (
            tuple((n, t.data_ptr(), t._version, tuple(t.shape), str(t.dtype)) for n, t in state.items()),
            options,
        )
        cached = self.__dict__.get("_fingerprint_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        h = hashlib.sha256()
        for name, t in state.items():
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        h.update(options)
        fp = h.hexdigest()[:16]
        self.__dict__["_fingerprint_cache"] = (key, fp)
        return fp


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
    """Runs the model on a float32 numpy batch with one backend.

    ``eager``/``channels-last``/``bf16`` run the PyTorch module (``bf16``: :func:`torch.autocast` with bfloat16 on
    CPU, float16 on CUDA); ``onnx`` runs the exported graph with onnxruntime; ``onnx-int8`` runs the statically
    quantised graph at ``onnx_path`` (made by :func:`quantize_onnx_int8`; built here from ``calibration`` if not
    given).
    """

    def __init__(
        self,
        predictor: TilePredictor,
        backend: str,
        device: str = "cpu",
        *,
        onnx_path: str | Path | None = None,
        calibration: Callable[[], Sequence[np.ndarray]] | None = None,
        calibration_key: str = "",
        tile_size: int | None = None,
        ort_threads: int | None = None,
    ):
        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.backend = backend
        self.device = torch.device(device)
        self.model = predictor.model.eval().to(self.device)
        self.session = None
        self.autocast: tuple[str, torch.dtype] | None = None
        if backend == "channels-last":
            self.model = self.model.to(memory_format=torch.channels_last)
        elif backend == "onnx":
            self.session = _ort_session(_onnx_export(predictor, tile_size), ort_threads)
        elif backend == "onnx-int8":
            if onnx_path is None:
                if calibration is None:
                    raise ConfigError("the onnx-int8 backend needs calibration tiles (or a quantised model path)")
                onnx_path = quantize_onnx_int8(predictor, calibration, calibration_key, tile_size=tile_size)
            self.session = _ort_session(Path(onnx_path), ort_threads)
        elif backend == "bf16":
            kind = self.device.type
            self.autocast = (kind, torch.float16 if kind == "cuda" else torch.bfloat16)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.session is not None:
            (y,) = self.session.run(None, {"input": x})
            return y
        with torch.inference_mode():
            t = torch.from_numpy(x).to(self.device)
            if self.backend == "channels-last":
                t = t.contiguous(memory_format=torch.channels_last)
            if self.autocast is not None:
                with torch.autocast(self.autocast[0], dtype=self.autocast[1]):
                    y = self.model(t)
            else:
                y = self.model(t)
            if isinstance(y, (tuple, list)):
                y = y[0]
            return y.float().cpu().numpy()


_ONNX_LOCK = threading.Lock()


def _static_tiles(predictor: TilePredictor) -> bool:
    """Whether the network exports to ONNX only at one tile size (``onnx_static_tiles = True`` on the module).

    Swin encoders pad each stage to whole attention windows and build the shifted-window mask from the feature size,
    and UperNet pools to fixed bins: that arithmetic does not export with a symbolic height and width, but it does
    with a fixed tile size, and the engine feeds every tile at the same size (edge tiles zero-padded).
    """
    return bool(getattr(predictor.model, "onnx_static_tiles", False))


def _onnx_export(predictor: TilePredictor, tile_size: int | None = None) -> Path:
    """Export the model to ONNX once (cached beside the checkpoint, keyed by weights); returns the ``.onnx`` path.

    The graph takes any batch size and, for most networks, any tile size. A network marked ``onnx_static_tiles``
    (:func:`_static_tiles`) is exported for ``tile_size`` × ``tile_size`` tiles only, cached as ``<name>.t<size>.onnx``.
    """
    import tempfile

    fp = predictor.fingerprint()
    cache = predictor.onnx_cache or Path(tempfile.gettempdir()) / "terracarbon-onnx" / f"{fp}.onnx"
    cache = Path(cache)
    static = _static_tiles(predictor)
    if static:
        if tile_size is None:
            raise ConfigError(f"{type(predictor.model).__name__} exports to ONNX only for one tile size: give tile_size")
        cache = cache.with_name(f"{cache.stem}.t{int(tile_size)}{cache.suffix}")
    stamp = cache.with_name(cache.name + ".json")
    with _ONNX_LOCK:
        fresh = cache.exists() and stamp.exists() and json.loads(stamp.read_text()).get("fingerprint") == fp
        if not fresh:
            c = predictor.in_channels
            if c is None:
                raise ConfigError("the onnx backend needs the number of input bands (in_bands or mean/std)")
            side = int(tile_size) if static else 64
            dummy = torch.zeros(1, c, side, side)
            axes = {0: "batch"} if static else {0: "batch", 2: "height", 3: "width"}
            model = predictor.model.eval().cpu()
            with atomic_path(cache, suffix=".onnx") as tmp:
                torch.onnx.export(
                    model,
                    (dummy,),
                    str(tmp),
                    input_names=["input"],
                    output_names=["output"],
                    dynamic_axes={"input": axes, "output": axes},
                    opset_version=17,
                    dynamo=False,
                )
            atomic_write_json(stamp, {"fingerprint": fp})
    return cache


def _ort_session(path: Path, threads: int | None = None):
    """An onnxruntime session on ``path`` with ``threads`` intra-op threads (default: as many as torch uses; CUDA
    first when present)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or torch.get_num_threads())
    providers = [
        p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()
    ]
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


# int8 settings, chosen by measurement on this project's 2-core AVX2 machine (docs/performance.md): QDQ format,
# per-channel weights, min-max calibration; the model's last Conv (the regression/logit head) stays float.
# reduce_range (7-bit weights): x86 CPUs without VNNI multiply u8 x s8 with VPMADDUBSW, whose int16 pair sums can
# saturate; onnxruntime's guide recommends reduce_range there, and it cut the error ~8x on the engine test
INT8_SETTINGS: dict[str, Any] = {
    "format": "QDQ",
    "per_channel": True,
    "exclude_last_conv": True,
    "reduce_range": True,
    "calibration_tiles": 8,
}
# optional keys (absent: static, every op onnxruntime quantises, as for the U-Net): "op_types", the op types to
# quantise (e.g. ["Conv", "MatMul"]); "activation_matmuls": False keeps MatMuls of two activations (attention's q·kᵀ
# and attn·v) float; "mode": "dynamic" quantises the weights ahead and the activations at run time (no calibration
# ranges). A model may carry its own overrides as ``onnx_int8_settings`` (a dict on the module)


class _TileCalibration:
    """An onnxruntime ``CalibrationDataReader`` over normalised input tiles (one tile per ``get_next``)."""

    def __init__(self, tiles: Sequence[np.ndarray]):
        self._it = iter(list(tiles))

    def get_next(self):
        x = next(self._it, None)
        return None if x is None else {"input": np.ascontiguousarray(x[None], np.float32)}


def quantize_onnx_int8(
    predictor: TilePredictor,
    calibration: Callable[[], Sequence[np.ndarray]],
    calibration_key: str = "",
    *,
    settings: Mapping[str, Any] | None = None,
    out_path: str | Path | None = None,
    tile_size: int | None = None,
) -> Path:
    """Statically quantise the predictor's ONNX export to int8 (weights int8, activations uint8), cached.

    ``calibration()`` returns normalised ``C×t×t`` input tiles (the engine samples them from the raster being
    predicted); the activation ranges are their min/max through the float model. The result is cached beside the
    float export (``<name>.int8.onnx`` + a ``.json`` stamp holding the weights' fingerprint, ``calibration_key`` —
    the engine uses the input file's identity — and ``settings``); a stale or missing cache is rebuilt.
    ``settings`` override :data:`INT8_SETTINGS` (``format`` "QDQ" or "QOperator", ``per_channel``,
    ``exclude_last_conv``, ``reduce_range``). Uses ``onnxruntime.quantization.quantize_static`` after its
    ``quant_pre_process`` (shape inference and graph optimisation), as onnxruntime's quantisation guide
    (https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html) recommends.
    """
    import tempfile

    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    cfg = {**INT8_SETTINGS, **dict(getattr(predictor.model, "onnx_int8_settings", None) or {}), **dict(settings or {})}
    tiles = None
    if tile_size is None and _static_tiles(predictor):
        tiles = list(calibration())
        tile_size = int(tiles[0].shape[-1]) if tiles else None
    fp32 = _onnx_export(predictor, tile_size)
    path = Path(out_path) if out_path is not None else fp32.with_name(fp32.stem + ".int8.onnx")
    stamp = path.with_name(path.name + ".json")
    want = {"fingerprint": predictor.fingerprint(), "calibration": calibration_key, "settings": cfg}
    with _ONNX_LOCK:
        if path.exists() and stamp.exists():
            with contextlib.suppress(ValueError, OSError):
                if json.loads(stamp.read_text()) == json.loads(json.dumps(want)):
                    return path
        tiles = list(calibration()) if tiles is None else tiles
        if not tiles:
            raise ConfigError("int8 calibration needs at least one input tile")
        with tempfile.TemporaryDirectory(prefix="tc-int8-") as work:
            pre = Path(work) / "pre.onnx"
            quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
            graph = onnx.load(str(pre)).graph
            convs = [n.name for n in graph.node if n.op_type == "Conv"]
            exclude = convs[-1:] if cfg["exclude_last_conv"] else []
            if not cfg.get("activation_matmuls", True):
                weights = {i.name for i in graph.initializer}
                exclude += [n.name for n in graph.node if n.op_type == "MatMul" and not weights & set(n.input)]
            with atomic_path(path, suffix=".onnx") as tmp:
                common = dict(
                    per_channel=bool(cfg["per_channel"]),
                    reduce_range=bool(cfg["reduce_range"]),
                    weight_type=QuantType.QInt8,
                    nodes_to_exclude=exclude,
                    op_types_to_quantize=cfg.get("op_types"),
                )
                if cfg.get("mode", "static") == "dynamic":
                    quantize_dynamic(str(pre), str(tmp), **common)
                else:
                    quantize_static(
                        str(pre),
                        str(tmp),
                        _TileCalibration(tiles),
                        quant_format=QuantFormat.QDQ if cfg["format"] == "QDQ" else QuantFormat.QOperator,
                        activation_type=QuantType.QUInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"CalibTensorRangeSymmetric": False},
                        **common,
                    )
        atomic_write_json(stamp, want)
    return path


def int8_calibration(
    src_path: str | Path, predictor: TilePredictor, grid: TileGrid, n: int | None = None
) -> tuple[Callable[[], list[np.ndarray]], str]:
    """``(tiles, key)`` for :func:`quantize_onnx_int8` from the raster being predicted.

    ``tiles()`` reads ``n`` (default ``INT8_SETTINGS["calibration_tiles"]``) normalised tiles of ``grid`` spread
    evenly over the raster; ``key`` names the file (path, size, modification time) and the tiling, so the cached
    quantised model is rebuilt when the input changes.
    """
    src_path = Path(src_path)
    n = int(INT8_SETTINGS["calibration_tiles"] if n is None else n)
    st = os.stat(src_path)
    key = f"{src_path.resolve()}:{st.st_size}:{st.st_mtime_ns}:{grid.tile_size}:{n}"
    return (lambda: _calibration_tiles(src_path, predictor, grid, n)), key


def _calibration_tiles(src_path: Path, predictor: TilePredictor, grid: TileGrid, n: int) -> list[np.ndarray]:
    """``n`` normalised tiles spread evenly over the grid (deterministic), for int8 calibration."""
    idx = sorted({int(round(i)) for i in np.linspace(0, len(grid) - 1, min(n, len(grid)))})
    wins = [grid.window(i // grid.n_cols, i % grid.n_cols) for i in idx]
    with rasterio.open(src_path) as ds:
        x, _ = _read_tiles(ds, predictor, wins)
    return list(x)


# ---------------------------------------------------------------------------------------------------------- tile work


def _read_tiles(ds, predictor: TilePredictor, windows: Sequence[Window]) -> tuple[np.ndarray, np.ndarray]:
    """Read, mask and normalise a batch of (possibly out-of-bounds) windows -> (x B×C×t×t, valid B×t×t).

    GDAL decodes each window straight into its slot of the batch (converting to float32); masking and
    normalisation then work in place on that slot, so a tile costs one pass per operation and no copies.
    """
    bands = list(predictor.in_bands) if predictor.in_bands is not None else list(range(1, ds.count + 1))
    t = int(windows[0].height)
    x = np.zeros((len(windows), len(bands), t, t), np.float32)
    valid = np.zeros((len(windows), t, t), bool)
    nodatas = [ds.nodatavals[b - 1] for b in bands]
    nodatas = [(b, np.float32(nd)) for b, nd in enumerate(nodatas) if nd is not None and np.isfinite(nd)]
    mean = None if predictor.mean is None else np.asarray(predictor.mean, np.float32)[:, None, None]
    std = None if predictor.std is None else np.asarray(predictor.std, np.float32)[:, None, None]
    for i, w in enumerate(windows):
        r0, c0 = max(0, int(w.row_off)), max(0, int(w.col_off))
        r1, c1 = min(ds.height, int(w.row_off + w.height)), min(ds.width, int(w.col_off + w.width))
        if r1 <= r0 or c1 <= c0:
            continue
        dr, dc = r0 - int(w.row_off), c0 - int(w.col_off)
        data = x[i, :, dr : dr + r1 - r0, dc : dc + c1 - c0]
        ok = valid[i, dr : dr + r1 - r0, dc : dc + c1 - c0]
        ds.read(bands, window=Window(c0, r0, c1 - c0, r1 - r0), out=data)
        scratch = np.empty(ok.shape, bool)
        np.isfinite(data[0], out=ok)
        for b in range(1, len(bands)):
            ok &= np.isfinite(data[b], out=scratch)
        for b, nd in nodatas:
            ok &= np.not_equal(data[b], nd, out=scratch)
        if mean is not None:
            data -= mean
        if std is not None:
            data /= std
        if not ok.all():
            np.copyto(data, np.float32(0.0), where=~ok)
    return x, valid


_WORKER_RUNNERS: dict[tuple[int, str], _Runner] = {}


def _predict_batch(
    predictor: TilePredictor,
    src: str,
    windows: list[Window],
    backend: str,
    device: str = "cpu",
    threads: int = 1,
    onnx_path: str | None = None,
):
    """Dask task: read and predict one batch of tiles; the runner is built once per worker process and predictor.

    ``onnx_path``: the quantised model of the ``onnx-int8`` backend (made once by the client).

    The worker uses ``threads`` torch threads: the same count as the client's process by default, because CPU kernels
    may sum in a different order with another thread count, and the output would then differ in the last bit.
    """
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    key = (id(predictor), backend)
    runner = _WORKER_RUNNERS.get(key)
    if runner is None:
        runner = _WORKER_RUNNERS[key] = _Runner(
            predictor, backend, device, onnx_path=onnx_path, tile_size=int(windows[0].height)
        )
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


def _holding_output_lock(fn: Callable[..., Path]) -> Callable[..., Path]:
    """Run ``fn`` holding :func:`terracarbon.utils.output_lock` on its ``dst_path``: a second live run writing the
    same map stops at once, naming the first one's process (a dead run's lock is taken over, so resume works)."""
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Path:
        with output_lock(sig.bind(*args, **kwargs).arguments["dst_path"]):
            return fn(*args, **kwargs)

    return wrapper


@_holding_output_lock
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
        backend: ``"eager"``, ``"channels-last"``, ``"onnx"``, ``"onnx-int8"`` or ``"bf16"`` (see :data:`BACKENDS`).
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

    k, t, ov = predictor.out_channels, grid.tile_size, grid.overlap
    wpad = grid.n_cols * grid.stride + ov
    acc = np.zeros((k, t, wpad), np.float32)
    wsum = np.zeros((t, wpad), np.float32)
    valid = np.zeros((t, wpad), bool)
    if tail is not None:
        acc[:, :ov], wsum[:ov], valid[:ov] = tail["acc"], tail["wsum"], tail["valid"]

    calibration = int8_calibration(src_path, predictor, grid) if backend == "onnx-int8" else None
    threads = worker_threads or torch.get_num_threads()
    results = _result_stream(
        predictor, src_path, grid, rows_done, batch_size, backend, device, scheduler, threads, calibration
    )
    with progress(disable=not progress_bar) as bar:
        task = bar.add_task(f"predict {src_path.name}", total=len(grid), completed=rows_done * grid.n_cols)
        writer = _StripWriter(
            state, predictor, grid, width, acc, wsum, valid, on_strip, lambda n: bar.advance(task, n)
        )
        try:
            for row in range(rows_done, grid.n_rows):
                batches = _batches(grid, row, batch_size)
                for j, batch in enumerate(batches):
                    y, ok = next(results)
                    if y.shape[1] < k:
                        raise ConfigError(f"model returned {y.shape[1]} channels, predictor expects {k}")
                    writer.put(row, batch, y, ok, j == len(batches) - 1)
            writer.finish()
        finally:
            writer.abort()
            with contextlib.suppress(Exception):
                results.close()
    with atomic_path(dst_path, suffix=".tif") as tmp:
        # DEFLATE of the COG's blocks and overviews runs on every core: the model is done by now
        with rasterio.Env(GDAL_NUM_THREADS=str(max(1, os.cpu_count() or 1))):
            to_cog(state.path, tmp)
    state.clear()
    return dst_path


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
        # uncompressed and tiled like the COG: writing a strip costs no DEFLATE, and the final COG copy reads
        # whole 256 px blocks without decoding (the COG is the only DEFLATE pass)
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
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
        hole = ~valid[:h, :width]
        if hole.any():
            np.copyto(out, np.asarray(predictor.out_nodata).astype(out.dtype), where=hole[None])
    with rasterio.open(path, "r+") as dst:
        dst.write(out, window=Window(0, r0, width, h))


class _StripWriter:
    """Blends model outputs into the strip buffer and writes finished strips, in a thread beside the model.

    Items (one batch each) are handled in submission order, so the blend sums (and the file) are the same as
    with a serial loop. The queue holds a few batches: memory stays one tile row plus those batches. An error in
    the thread (a failed write, an ``on_strip`` callback raising) is re-raised in the caller by :meth:`put` or
    :meth:`finish`; after it the thread only drains the queue.
    """

    def __init__(self, state, predictor, grid, width, acc, wsum, valid, on_strip, advance):
        import queue

        self.state, self.predictor, self.grid, self.width = state, predictor, grid, width
        self.acc, self.wsum, self.valid = acc, wsum, valid
        self.on_strip, self.advance = on_strip, advance
        self.weights = grid.blend_weights()
        self._tmp = np.empty((predictor.out_channels, grid.tile_size, grid.tile_size), np.float32)
        self.error: BaseException | None = None
        self._cancel = False
        self._queue: Any = queue.Queue(maxsize=4)
        self._thread = threading.Thread(target=self._loop, name="terracarbon-writer", daemon=True)
        self._thread.start()

    def put(self, row: int, batch: list[Window], y: np.ndarray, ok: np.ndarray, last: bool) -> None:
        """Queue one batch's outputs; ``last`` marks the batch that completes tile row ``row``."""
        self._raise()
        self._queue.put((row, batch, y, ok, last))

    def finish(self) -> None:
        """Wait until every queued batch is blended and written; re-raise the thread's error."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise()

    def abort(self) -> None:
        """Stop the thread (queued batches are dropped)."""
        if self._thread.is_alive():
            self._cancel = True
            self._queue.put(None)
            self._thread.join()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self.error is not None or self._cancel:
                continue
            try:
                self._blend(*item)
            except BaseException as exc:  # re-raised in the caller's thread
                self.error = exc

    def _blend(self, row: int, batch: list[Window], y: np.ndarray, ok: np.ndarray, last: bool) -> None:
        k, t = self.predictor.out_channels, self.grid.tile_size
        acc, wsum, valid, weights, tmp = self.acc, self.wsum, self.valid, self.weights, self._tmp
        for i, w in enumerate(batch):
            c0 = int(w.col_off)
            np.multiply(y[i, :k], weights, out=tmp)
            acc[:, :, c0 : c0 + t] += tmp
            wsum[:, c0 : c0 + t] += weights
            valid[:, c0 : c0 + t] |= ok[i]
        self.advance(len(batch))
        if not last:
            return
        grid, stride, ov = self.grid, self.grid.stride, self.grid.overlap
        r0, r1 = grid.strip_rows(row)
        _write_strip(self.state.path, self.predictor, acc, wsum, valid, r0, r1, self.width)
        # shift the buffer: the overlap rows below the strip carry into the next tile row
        acc[:, :ov], wsum[:ov], valid[:ov] = acc[:, stride:], wsum[stride:], valid[stride:]
        acc[:, ov:], wsum[ov:], valid[ov:] = 0.0, 0.0, False
        self.state.save(row + 1, {"acc": acc[:, :ov], "wsum": wsum[:ov], "valid": valid[:ov]})
        if self.on_strip is not None:
            self.on_strip(row + 1, grid.n_rows)


def _result_stream(
    predictor, src_path, grid, first_row, batch_size, backend, device, scheduler, threads, calibration=None
):
    """Yield (outputs, valid) per batch, in order, from this process (reads in a thread pool) or from Dask.

    ``calibration``: ``(tiles callable, key)`` for the ``onnx-int8`` backend's quantisation (cached).
    """
    todo = [b for row in range(first_row, grid.n_rows) for b in _batches(grid, row, batch_size)]
    if scheduler is None:
        yield from _local_stream(predictor, src_path, todo, backend, device, calibration)
    else:
        onnx_path = None
        if calibration is not None:
            onnx_path = str(quantize_onnx_int8(predictor, calibration[0], calibration[1], tile_size=grid.tile_size))
        yield from _dask_stream(predictor, src_path, todo, backend, scheduler, threads, onnx_path)


class _TileReader:
    """A pool of reader threads, each with its own dataset handle (GDAL handles are not thread-safe)."""

    def __init__(self, src_path: Path, predictor: TilePredictor, n_threads: int = READ_THREADS):
        self.src_path, self.predictor = src_path, predictor
        self._local = threading.local()
        self._handles: list[Any] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max(1, n_threads), thread_name_prefix="terracarbon-read")

    def _read(self, windows: list[Window]) -> tuple[np.ndarray, np.ndarray]:
        ds = getattr(self._local, "ds", None)
        if ds is None:
            ds = self._local.ds = rasterio.open(self.src_path)
            with self._lock:
                self._handles.append(ds)
        return _read_tiles(ds, self.predictor, windows)

    def submit(self, windows: list[Window]):
        """Start reading one batch; returns a future of ``(x, valid)``."""
        return self._pool.submit(self._read, windows)

    def close(self) -> None:
        """Cancel pending reads, wait for running ones, close the handles."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        for ds in self._handles:
            ds.close()


def _model_streams(backend: str, device: str) -> int:
    """How many batches the model runs at once in this process (see :data:`ORT_STREAMS`)."""
    if backend not in ("onnx", "onnx-int8") or torch.device(device).type != "cpu":
        return 1
    n = os.environ.get("TERRACARBON_ORT_STREAMS") or ORT_STREAMS or torch.get_num_threads()
    return max(1, int(n))


def _local_stream(predictor, src_path, todo, backend, device, calibration=None):
    reader = _TileReader(src_path, predictor)
    streams = _model_streams(backend, device)
    pool = ThreadPoolExecutor(streams, thread_name_prefix="terracarbon-model") if streams > 1 else None
    try:
        # the first batches are read while the runner starts (onnx session, int8 calibration)
        pending = deque(reader.submit(w) for w in todo[: PREFETCH_BATCHES + streams - 1])
        queued = len(pending)
        cal, key = calibration if calibration is not None else (None, "")
        tile = int(todo[0][0].height) if todo else None
        runner = _Runner(
            predictor, backend, device, calibration=cal, calibration_key=key, tile_size=tile,
            ort_threads=1 if streams > 1 else None,
        )

        def run(read):
            x, ok = read.result()
            return runner(x), ok

        def submit_read() -> None:
            nonlocal queued
            if queued < len(todo):
                pending.append(reader.submit(todo[queued]))
                queued += 1

        if pool is None:
            while pending:
                read = pending.popleft()
                submit_read()
                yield run(read)
            return
        # onnxruntime runs on `streams` threads at once. A stream that finishes (a row's short last batch) takes the
        # next batch at once, even while the batch before it is still running; results are yielded in order, and at
        # most PREFETCH_BATCHES finished ones wait for their turn (memory stays bounded).
        running: deque = deque()

        def top_up() -> None:
            busy = sum(not f.done() for f in running)
            while pending and busy < streams and len(running) < streams + PREFETCH_BATCHES:
                running.append(pool.submit(run, pending.popleft()))
                submit_read()
                busy += 1

        while pending or running:
            top_up()
            head = running[0]
            while not head.done():
                wait([f for f in running if not f.done()], return_when=FIRST_COMPLETED)
                top_up()
            yield running.popleft().result()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        reader.close()


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


def _dask_stream(predictor, src_path, todo, backend, scheduler, threads, onnx_path=None):
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
                        onnx_path,
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
