"""The end-to-end demo: synthetic scene -> trained U-Net -> AGB map -> carbon stock, in a few minutes on 2 cores.

``run_demo("demo-output")`` (also ``make demo`` and ``terracarbon demo``) writes into ``out_dir``:

- ``scene/``: the generated sample scene (12-band ``stack.tif``, true ``agb.tif``, sparse ``labels.tif``,
  ``aoi.geojson``, ``scene.json``),
- ``model/``: the trained checkpoint ``model.pt``, its model card ``README.md`` (with measured CO2e),
  ``metrics.json``, ``emissions.json``,
- ``agb_map.tif``: the predicted AGB map (Mg/ha, cloud-optimised GeoTIFF) and ``agb_map.run/`` (its emissions),
- ``carbon_stock.json``: AGB, carbon and CO2e totals over the sample AOI (predicted map and, for reference, the
  true AGB),
- ``summary.json`` and ``quicklook.png`` (RGB, predicted AGB with the AOI, true AGB, predicted vs true).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

__all__ = ["run_demo", "DEMO_MODEL_SPEC"]

DEMO_MODEL_SPEC = {
    "arch": "unet",
    "encoder_name": "resnet18",
    "encoder_depth": 3,
    "decoder_channels": [64, 32, 16],
}
"""A CPU-friendly U-Net (ResNet-18 encoder cut at depth 3) for the demo."""


def _quicklook(png: Path, scene, agb_map: Path, aoi_path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import rasterio

    from terracarbon.utils import atomic_path

    with rasterio.open(scene.stack) as ds:
        rgb = ds.read([3, 2, 1], out_dtype="float32")
        bounds = ds.bounds
        crs = ds.crs
    with rasterio.open(agb_map) as ds:
        pred = ds.read(1, masked=True).filled(np.nan)
    with rasterio.open(scene.agb) as ds:
        truth = ds.read(1)
    rgb = np.nan_to_num(np.clip(np.moveaxis(rgb, 0, -1) / np.nanpercentile(rgb, 98), 0, 1))
    extent = (bounds.left, bounds.right, bounds.bottom, bounds.top)
    vmax = float(np.nanpercentile(truth, 99))
    fig, axes = plt.subplots(2, 2, figsize=(11, 10), constrained_layout=True)
    axes[0, 0].imshow(rgb, extent=extent)
    axes[0, 0].set_title("Sentinel-2-like RGB (B04, B03, B02)")
    im = axes[0, 1].imshow(pred, extent=extent, cmap="YlGn", vmin=0, vmax=vmax)
    axes[0, 1].set_title("predicted AGB (Mg/ha) and sample AOI")
    fig.colorbar(im, ax=axes[0, 1], shrink=0.8)
    try:
        import geopandas as gpd

        gpd.read_file(aoi_path).to_crs(crs).boundary.plot(ax=axes[0, 1], color="crimson", linewidth=1.5)
    except Exception:  # pragma: no cover - AOI outline is decoration only
        pass
    im = axes[1, 0].imshow(truth, extent=extent, cmap="YlGn", vmin=0, vmax=vmax)
    axes[1, 0].set_title("true AGB (Mg/ha)")
    fig.colorbar(im, ax=axes[1, 0], shrink=0.8)
    m = np.isfinite(pred) & np.isfinite(truth)
    rng = np.random.default_rng(0)
    idx = rng.choice(int(m.sum()), size=min(20000, int(m.sum())), replace=False)
    axes[1, 1].scatter(truth[m][idx], pred[m][idx], s=1, alpha=0.25, color="darkgreen")
    axes[1, 1].plot([0, vmax], [0, vmax], "k--", linewidth=1)
    axes[1, 1].set_xlabel("true AGB (Mg/ha)")
    axes[1, 1].set_ylabel("predicted AGB (Mg/ha)")
    axes[1, 1].set_title("predicted vs true, all pixels")
    for ax in axes.flat[:3]:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("")
        ax.set_ylabel("")
    fig.suptitle(title)
    with atomic_path(png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return png


def run_demo(
    out_dir: str | Path = "demo-output",
    *,
    size: int = 768,
    seed: int = 0,
    epochs: int = 8,
    samples_per_epoch: int = 256,
    patch_size: int = 64,
    batch_size: int = 16,
    max_minutes: float | None = 6.0,
    baseline: bool = True,
    rf_trees: int = 100,
    quick: bool = False,
    progress: bool = True,
    console: Any = None,
) -> dict[str, Any]:
    """Run the whole biomass pipeline on a generated sample scene and write all outputs into ``out_dir``.

    Trains on the top 80 % of the scene's rows (sparse labels only), validates and reports metrics on the held-out
    bottom 20 %, predicts the whole scene, computes carbon stocks over the sample AOI and prints a summary table.
    ``max_minutes`` caps training time. ``quick`` is a smoke run (256 px scene, 2 short epochs, 20 trees).
    Returns the summary dict (also ``summary.json``).
    """
    from rich.console import Console
    from rich.table import Table

    from terracarbon.biomass.predict import predict_biomass
    from terracarbon.biomass.train import train_biomass
    from terracarbon.carbon import carbon_stock
    from terracarbon.data.synthetic.scenes import make_scene
    from terracarbon.utils import atomic_write_json

    con = console or Console()
    if quick:
        size, epochs, samples_per_epoch, rf_trees = (
            min(size, 256),
            min(epochs, 2),
            min(samples_per_epoch, 64),
            20,
        )
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def lap(name: str, t: float) -> None:
        timings[name] = round(time.perf_counter() - t, 1)

    t = time.perf_counter()
    con.print(f"[bold]1/6[/] generating a {size}×{size} px synthetic scene (seed {seed})")
    scene = make_scene(out / "scene", size=size, seed=seed)
    lap("scene_s", t)
    con.print(f"    label noise floor RMSE {scene.noise_floor_rmse:.1f} Mg/ha")

    t = time.perf_counter()
    con.print("[bold]2/6[/] training a U-Net on the sparse labels (top 80 % of rows; bottom 20 % held out)")
    res = train_biomass(
        [scene],
        epochs=epochs,
        samples_per_epoch=samples_per_epoch,
        patch_size=patch_size,
        batch_size=batch_size,
        seed=seed,
        out_dir=out / "model",
        max_minutes=max_minutes,
        model_spec=DEMO_MODEL_SPEC,
        lr=3e-3,
        val_fraction=0.2,
        progress=progress,
    )
    lap("train_s", t)
    rf = None
    if baseline:
        from terracarbon.biomass.baseline import train_rf_baseline

        t = time.perf_counter()
        rf = train_rf_baseline([scene], out_dir=out / "rf_baseline", n_estimators=rf_trees, seed=seed)
        lap("rf_baseline_s", t)

    t = time.perf_counter()
    con.print("[bold]3/6[/] predicting the AGB map tile by tile")
    agb_map = predict_biomass(
        res.checkpoint, scene.stack, out / "agb_map.tif", progress=progress, resume=False
    )
    lap("predict_s", t)

    t = time.perf_counter()
    con.print("[bold]4/6[/] carbon stock over the sample AOI")
    stock = carbon_stock(agb_map, scene.aoi)
    stock_true = carbon_stock(scene.agb, scene.aoi)
    atomic_write_json(
        out / "carbon_stock.json", {"predicted": stock.to_dict(), "true_agb_reference": stock_true.to_dict()}
    )
    lap("carbon_s", t)

    t = time.perf_counter()
    con.print("[bold]5/6[/] quick-look PNG and summary")
    m = res.metrics
    png = _quicklook(
        out / "quicklook.png",
        scene,
        agb_map,
        scene.aoi,
        f"terracarbon demo: held-out RMSE {m['rmse']:.1f} Mg/ha (label noise floor {m.get('noise_floor_rmse', float('nan')):.1f})",
    )
    lap("quicklook_s", t)

    t = time.perf_counter()
    con.print("[bold]6/6[/] site assessment over the parcels and the offline HTML report")
    from terracarbon.assess import assess
    from terracarbon.report import build_report

    site = assess(
        scene.root,
        scene.parcels or scene.aoi,
        {"biomass": res.checkpoint},
        out / "assessment",
        layers={"biomass": agb_map},  # reuse the map predicted above: nothing is predicted twice
        progress=progress,
    )
    report = build_report(site.run_dir, title="terracarbon demo: sample site")
    lap("assess_s", t)

    summary: dict[str, Any] = {
        "out_dir": str(out),
        "scene": {
            "size": size,
            "seed": seed,
            "noise_floor_rmse": scene.noise_floor_rmse,
            "path": str(scene.root),
        },
        "model": {
            "checkpoint": str(res.checkpoint),
            "best_epoch": res.best_epoch,
            "epochs_run": len(res.history),
            "trainable_params": res.trainable_params,
            "train_wall_s": round(res.wall_time_s, 1),
        },
        "heldout_metrics": {k: m.get(k) for k in ("n", "rmse", "mae", "bias", "r2", "noise_floor_rmse")},
        "heldout_vs_truth": m.get("vs_truth_at_labels"),
        "rf_baseline_metrics": None
        if rf is None
        else {k: rf.metrics.get(k) for k in ("n", "rmse", "mae", "bias", "r2", "noise_floor_rmse")},
        "carbon_stock": {
            "aoi": str(scene.aoi),
            "area_ha": stock.area_ha,
            "agb_mean_mg_per_ha": stock.agb_mean_mg_per_ha,
            "agb_total_mg": stock.agb_total_mg,
            "carbon_total_mg": stock.carbon_total_mg,
            "co2e_total_t": stock.co2e_total_t,
            "true_co2e_total_t": stock_true.co2e_total_t,
            "co2e_error_pct": 100.0
            * (stock.co2e_total_t - stock_true.co2e_total_t)
            / stock_true.co2e_total_t,
        },
        "footprint": {k: (res.footprint or {}).get(k) for k in ("energy_kwh", "emissions_g", "method")},
        "files": {
            "agb_map": str(agb_map),
            "quicklook": str(png),
            "carbon_stock": str(out / "carbon_stock.json"),
            "model_card": str(res.model_card) if res.model_card else None,
            "assessment": str(site.json_path),
            "report": str(report),
        },
        "timings_s": timings,
        "total_s": round(time.perf_counter() - t0, 1),
    }
    atomic_write_json(out / "summary.json", summary)

    table = Table(title=f"terracarbon demo — {out}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    rows = [
        ("scene", f"{size}×{size} px, 10 m, 12 bands"),
        ("label noise floor RMSE (Mg/ha)", f"{m.get('noise_floor_rmse', float('nan')):.1f}"),
        ("U-Net held-out RMSE / MAE (Mg/ha)", f"{m['rmse']:.1f} / {m['mae']:.1f}"),
        ("U-Net held-out bias (Mg/ha) / R²", f"{m['bias']:+.1f} / {m['r2']:.3f}"),
    ]
    if rf is not None:
        rows.append(("RF baseline held-out RMSE / R²", f"{rf.metrics['rmse']:.1f} / {rf.metrics['r2']:.3f}"))
    rows += [
        ("AOI area (ha)", f"{stock.area_ha:,.1f}"),
        ("mean AGB in AOI (Mg/ha)", f"{stock.agb_mean_mg_per_ha:,.1f}"),
        ("carbon stock (Mg C)", f"{stock.carbon_total_mg:,.0f}"),
        ("CO2e stock (t)", f"{stock.co2e_total_t:,.0f}"),
        (
            "CO2e from true AGB (t)",
            f"{stock_true.co2e_total_t:,.0f} ({summary['carbon_stock']['co2e_error_pct']:+.1f} %)",
        ),
    ]
    fp = res.footprint or {}
    if fp.get("energy_kwh") is not None:
        rows.append(("training energy / CO2e", f"{fp['energy_kwh']:.4f} kWh / {fp['emissions_g']:.2f} g"))
    rows.append(("total time (s)", f"{summary['total_s']:.0f}"))
    for k, v in rows:
        table.add_row(k, v)
    con.print(table)
    con.print(
        f"outputs in [bold]{out}/[/]: agb_map.tif, carbon_stock.json, quicklook.png, summary.json, model/, "
        f"assessment/ (report: {report})"
    )
    return json.loads(json.dumps(summary, default=str))
