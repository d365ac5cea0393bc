"""``terracarbon gfm compare``: U-Net from scratch vs GFM (frozen / unfrozen, own-pretrained / random) on one split.

Every run uses the same training, validation and test scenes, the same crops (seed), the same epochs and the same
sparse-label regression task (:func:`terracarbon.biomass.train.train_biomass`), and is scored through the tiled
prediction engine on the test scenes (:func:`terracarbon.biomass.evaluate.evaluate_biomass`). The GFM encoder weights
come from ``encoder_weights`` (a file the user brings, e.g. a SatlasPretrain Swin-v2-B) or, when absent, from own
SimMIM pretraining (:func:`terracarbon.gfm.pretrain.pretrain_simmim`) on unlabelled rasters (by default the training
and test scenes' imagery, labels unused). The randomly initialised encoders are the control for "does the
pretraining carry information".

Outputs in ``out_dir``: ``compare.md`` (table + the exact configuration), ``compare.csv``, ``compare.png`` (RMSE,
R², trainable parameters, wall time), ``compare.json`` and one run folder per model (checkpoint, model card,
emissions).
"""

from __future__ import annotations

import csv
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from terracarbon.errors import ConfigError
from terracarbon.utils import atomic_path, atomic_write_json, atomic_write_text

__all__ = ["RUNS", "CompareResult", "compare_models", "write_table", "plot_table"]

#: run name -> (description, uses GFM, encoder init, frozen)
RUNS: dict[str, tuple[str, bool, str, bool]] = {
    "unet_scratch": ("U-Net trained from scratch", False, "random", False),
    "gfm_frozen": ("GFM, pretrained encoder frozen (decoder only)", True, "pretrained", True),
    "gfm_unfrozen": ("GFM, pretrained encoder fine-tuned", True, "pretrained", False),
    "gfm_random_frozen": ("GFM, random encoder frozen (control)", True, "random", True),
    "gfm_random_unfrozen": ("GFM architecture trained from scratch", True, "random", False),
}
COLUMNS = [
    "run",
    "description",
    "rmse",
    "mae",
    "bias",
    "r2",
    "trainable_params",
    "total_params",
    "wall_time_s",
    "energy_kwh",
    "emissions_g",
]


@dataclass
class CompareResult:
    """Outcome of :func:`compare_models`."""

    rows: list[dict[str, Any]]
    markdown: Path
    csv: Path
    plot: Path | None
    pretrain: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)


def _scene_stack(s: Any) -> Path:
    p = getattr(s, "stack", None)
    if p is not None:
        return Path(p)
    p = Path(s)
    return p / "stack.tif" if p.is_dir() else p


def compare_models(
    train_scenes: Sequence[Any],
    test_scenes: Sequence[Any],
    out_dir: str | Path,
    *,
    val_scenes: Sequence[Any] | None = None,
    runs: Sequence[str] = tuple(RUNS),
    encoder_weights: str | Path | None = None,
    pretrain_rasters: Sequence[Any] | None = None,
    pretrain_epochs: int = 10,
    pretrain_tiles_per_epoch: int = 256,
    pretrain_kwargs: dict[str, Any] | None = None,
    gfm: dict[str, Any] | None = None,
    unet: dict[str, Any] | None = None,
    epochs: int = 10,
    lr: float = 2e-3,
    lr_frozen: float | None = None,
    batch_size: int = 16,
    patch_size: int = 64,
    samples_per_epoch: int = 256,
    patience: int = 100,
    encoder_norm: bool = True,
    seed: int = 0,
    devices: int | str = 1,
    strategy: str = "auto",
    max_minutes: float | None = None,
    command: str | None = None,
    progress: bool = True,
) -> CompareResult:
    """Train and score the runs in ``runs`` (see :data:`RUNS`) on the same data; write the tables and plot.

    Args:
        train_scenes, test_scenes, val_scenes: scenes (``Scene`` objects or folders); without ``val_scenes`` the
            bottom rows of each training scene are the validation part (same for every run).
        runs: subset of :data:`RUNS`.
        encoder_weights: encoder checkpoint for the "pretrained" GFM runs; None = own SimMIM pretraining first.
        pretrain_rasters: unlabelled rasters for own pretraining (default: the train and test scenes' stacks).
        pretrain_epochs, pretrain_tiles_per_epoch, pretrain_kwargs: SimMIM settings (``pretrain_simmim`` kwargs).
        gfm: GFM spec overrides (``size``, ``variant``, ``decoder``, ``head_upsample``, ``img_size``,
            ``window_size``, ``embed_dim``, ``depths``, ``num_heads``...). With own pretraining the encoder
            geometry keys also go to the pretraining.
        unet: U-Net spec (default ``train_biomass``'s: smp Unet, ResNet-18 encoder, depth 4).
        epochs, lr, batch_size, patch_size, samples_per_epoch, patience, seed, devices, strategy, max_minutes:
            ``train_biomass`` settings, identical for every run; ``lr_frozen`` overrides ``lr`` for frozen runs.
        encoder_norm: GFM runs (pretrained and random alike, so the pair sees the same inputs) normalise bands with
            the statistics stored in an own encoder checkpoint when its band names match the training stack's;
            False = every run uses the training stack's statistics.
        command: the command line to print in the Markdown (the CLI fills it in).
    """
    from terracarbon.biomass.train import DEFAULT_MODEL_SPEC, train_biomass
    from terracarbon.gfm.pretrain import gfm_spec_from_encoder, pretrain_simmim

    unknown = [r for r in runs if r not in RUNS]
    if unknown:
        raise ConfigError(f"unknown compare run(s) {unknown}; choose from {', '.join(RUNS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gfm = dict(gfm or {})
    geometry_keys = (
        "size",
        "variant",
        "img_size",
        "patch_size",
        "window_size",
        "embed_dim",
        "depths",
        "num_heads",
    )
    geometry = {k: gfm[k] for k in geometry_keys if k in gfm}
    head = {k: v for k, v in gfm.items() if k not in geometry_keys}
    head.setdefault("decoder", "conv")
    geometry.setdefault("img_size", patch_size)
    if head.get("band_adapt") == "select" and head.get("checkpoint_bands") and not head.get("bands"):
        from terracarbon.raster.io import read_band_names

        head["bands"] = read_band_names(
            _scene_stack(train_scenes[0])
        )  # the model's bands = the training stack's

    pre_info = None
    needs_pretrained = any(RUNS[r][1] and RUNS[r][2] == "pretrained" for r in runs)
    if needs_pretrained and encoder_weights is None:
        rasters = (
            list(pretrain_rasters)
            if pretrain_rasters
            else [_scene_stack(s) for s in [*train_scenes, *test_scenes]]
        )
        kw = dict(pretrain_kwargs or {})
        kw.setdefault("epochs", pretrain_epochs)
        kw.setdefault("tiles_per_epoch", pretrain_tiles_per_epoch)
        kw.setdefault("seed", seed)
        kw.setdefault("progress", progress)
        pre = pretrain_simmim(
            [_scene_stack(r) if not isinstance(r, (str, Path)) else r for r in rasters],
            out / "pretrain" / "encoder.pt",
            devices=devices,
            strategy=strategy,
            **geometry,
            **kw,
        )
        encoder_weights = pre.checkpoint
        pre_info = {
            "checkpoint": str(pre.checkpoint),
            "initial_val_l1": pre.initial_val_loss,
            "final_val_l1": pre.final_val_loss,
            "wall_time_s": pre.wall_time_s,
            "energy_kwh": (pre.footprint or {}).get("energy_kwh"),
            "emissions_g": (pre.footprint or {}).get("emissions_g"),
            "epochs": kw["epochs"],
            "tiles_per_epoch": kw["tiles_per_epoch"],
            "rasters": [str(r) for r in rasters],
        }

    gfm_norm = None
    if encoder_norm and encoder_weights is not None and _is_own(encoder_weights):
        from terracarbon.gfm.pretrain import encoder_band_norm
        from terracarbon.raster.io import read_band_names

        gfm_norm = encoder_band_norm(encoder_weights, read_band_names(_scene_stack(train_scenes[0])))

    imported = _imported_model(encoder_weights)
    rows: list[dict[str, Any]] = []
    for name in runs:
        desc, is_gfm, init, frozen = RUNS[name]
        extra: dict[str, Any] = {}
        if is_gfm and imported is not None:  # a model file from `models import terratorch`: its own network
            spec = {k: v for k, v in imported[0].items() if k != "init_from"} | {"freeze_encoder": frozen}
            extra = {"bands": imported[1].get("bands"), "band_norm": (imported[1]["mean"], imported[1]["std"])}
            if init == "pretrained":  # start from its weights (encoder, decoder, head) and its predictions
                extra.update(init=encoder_weights, freeze_encoder=frozen)
        elif is_gfm:
            if (
                encoder_weights is not None
                and Path(encoder_weights).suffix == ".pt"
                and _is_own(encoder_weights)
            ):
                spec = gfm_spec_from_encoder(encoder_weights, **head, freeze_encoder=frozen)
                for k, v in geometry.items():
                    spec.setdefault(k, v)
            else:
                spec = {"arch": "gfm", **geometry, **head, "freeze_encoder": frozen}
                if encoder_weights is not None:
                    spec["encoder_weights"] = str(encoder_weights)
            if init == "random":
                spec.pop("encoder_weights", None)
        else:
            spec = dict(unet or DEFAULT_MODEL_SPEC)
        run_lr = lr_frozen if (frozen and lr_frozen is not None) else lr
        t0 = time.time()
        res = train_biomass(
            list(train_scenes),
            val_scenes=list(val_scenes) if val_scenes else None,
            test_scenes=list(test_scenes),
            model_spec=spec,
            epochs=epochs,
            lr=run_lr,
            batch_size=batch_size,
            patch_size=patch_size,
            samples_per_epoch=samples_per_epoch,
            patience=patience,
            seed=seed,
            out_dir=out / name,
            max_minutes=max_minutes,
            devices=devices,
            strategy=strategy,
            **{"band_norm": gfm_norm if is_gfm else None, **extra},
            progress=progress,
        )
        if is_gfm:
            from terracarbon.models.gfm import make_portable

            make_portable(res.checkpoint)
        m, fp = res.metrics, res.footprint or {}
        rows.append(
            {
                "run": name,
                "description": desc,
                "rmse": m.get("rmse"),
                "mae": m.get("mae"),
                "bias": m.get("bias"),
                "r2": m.get("r2"),
                "trainable_params": res.trainable_params,
                "total_params": res.total_params,
                "wall_time_s": res.wall_time_s if res.wall_time_s else time.time() - t0,
                "energy_kwh": fp.get("energy_kwh"),
                "emissions_g": fp.get("emissions_g"),
                "lr": run_lr,
                "spec": {k: (str(v) if isinstance(v, Path) else v) for k, v in spec.items()},
                "checkpoint": str(res.checkpoint),
                "noise_floor_rmse": m.get("noise_floor_rmse"),
                "best_epoch": res.best_epoch,
            }
        )
    config = {
        "train_scenes": [str(_scene_stack(s).parent) for s in train_scenes],
        "test_scenes": [str(_scene_stack(s).parent) for s in test_scenes],
        "val_scenes": [str(_scene_stack(s).parent) for s in val_scenes] if val_scenes else None,
        "epochs": epochs,
        "lr": lr,
        "lr_frozen": lr_frozen,
        "batch_size": batch_size,
        "patch_size": patch_size,
        "samples_per_epoch": samples_per_epoch,
        "seed": seed,
        "gfm": gfm,
        "unet": unet or DEFAULT_MODEL_SPEC,
        "encoder_weights": str(encoder_weights) if encoder_weights else None,
        "gfm_band_norm": "encoder checkpoint" if gfm_norm else "training stack",
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "command": command,
    }
    atomic_write_json(out / "compare.json", {"rows": rows, "pretrain": pre_info, "config": config})
    md, csv_path = write_table(rows, out, pre_info=pre_info, config=config, title="GFM vs U-Net comparison")
    plot = plot_table(rows, out / "compare.png")
    return CompareResult(rows=rows, markdown=md, csv=csv_path, plot=plot, pretrain=pre_info, config=config)


def _imported_model(path: str | Path | None) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(spec, meta) when ``path`` is a terracarbon model file of an imported TerraTorch network, else None."""
    if path is None or Path(path).suffix != ".pt" or not Path(path).exists():
        return None
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception:
        return None
    if not isinstance(payload, dict) or payload.get("format") != "terracarbon-model/1":
        return None
    if (payload.get("spec") or {}).get("arch") != "terratorch_upernet":
        return None
    return dict(payload["spec"]), dict(payload.get("meta") or {})


def _is_own(path: str | Path) -> bool:
    try:
        from terracarbon.gfm.pretrain import read_encoder_checkpoint

        read_encoder_checkpoint(path)
        return True
    except Exception:
        return False


def _fmt(v: Any, nd: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v != v:
            return "nan"
        if abs(v) >= 1e5 or (0 < abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:.{nd}f}"
    return str(v)


def write_table(
    rows: list[dict[str, Any]],
    out: Path,
    *,
    pre_info: dict[str, Any] | None,
    config: dict[str, Any],
    title: str,
    stem: str = "compare",
) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` and ``<stem>.md`` (table, pretraining line, configuration, command)."""
    csv_path = out / f"{stem}.csv"
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k) for k in COLUMNS})
    lines = [f"# {title}", ""]
    if config.get("command"):
        lines += ["Command:", "", "```", config["command"], "```", ""]
    hdr = "| run | description | RMSE (Mg/ha) | MAE | bias | R² | trainable params | total params | wall time (s) | energy (kWh) | CO2e (g) |"
    lines += [hdr, "|" + "---|" * 11]
    for r in rows:
        lines.append(
            "| "
            + " | ".join(
                [
                    r["run"],
                    r["description"],
                    _fmt(r["rmse"], 1),
                    _fmt(r["mae"], 1),
                    _fmt(r["bias"], 1),
                    _fmt(r["r2"], 3),
                    _fmt(r["trainable_params"]),
                    _fmt(r["total_params"]),
                    _fmt(r["wall_time_s"], 0),
                    _fmt(r["energy_kwh"], 5),
                    _fmt(r["emissions_g"], 2),
                ]
            )
            + " |"
        )
    nf = next((r.get("noise_floor_rmse") for r in rows if r.get("noise_floor_rmse")), None)
    if nf:
        lines += ["", f"Label noise floor on the test labels (RMSE of labels vs true AGB): {nf:.1f} Mg/ha."]
    if pre_info:
        lines += [
            "",
            f"Own SimMIM pretraining (shared by the *pretrained* GFM runs, not included in their wall time): "
            f"{pre_info['epochs']} epochs × {pre_info['tiles_per_epoch']} tiles, held-out reconstruction L1 "
            f"{pre_info['initial_val_l1']:.4f} -> {pre_info['final_val_l1']:.4f}, {_fmt(pre_info['wall_time_s'], 0)} s, "
            f"{_fmt(pre_info.get('energy_kwh'), 5)} kWh, {_fmt(pre_info.get('emissions_g'), 2)} g CO2e.",
        ]
    lines += ["", "Configuration:", "", "```json"]
    from terracarbon.utils import to_json

    lines += [to_json({k: v for k, v in config.items() if k != "command"}), "```", ""]
    md = out / f"{stem}.md"
    atomic_write_text(md, "\n".join(lines))
    return md, csv_path


def plot_table(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Bar charts of RMSE, R², trainable parameters (log) and wall time per run."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:  # pragma: no cover
        return None
    names = [r["run"] for r in rows]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    panels = [
        ("rmse", "RMSE (Mg/ha)", False),
        ("r2", "R²", False),
        ("trainable_params", "trainable parameters", True),
        ("wall_time_s", "wall time (s)", False),
    ]
    colors = [
        "#8c8c8c" if not n.startswith("gfm") else ("#1f77b4" if "random" not in n else "#ff7f0e")
        for n in names
    ]
    for ax, (key, label, log) in zip(axes, panels):
        vals = [float(r[key]) if r.get(key) is not None else 0.0 for r in rows]
        ax.bar(range(len(vals)), vals, color=colors)
        ax.set_xticks(range(len(vals)))
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
        ax.set_title(label)
        if log:
            ax.set_yscale("log")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
