"""The demo pipeline end to end, at toy size (the real demo is the same code with a 768 px scene)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rich.console import Console


def test_run_demo_writes_all_outputs(tmp_path):
    from terracarbon.demo import run_demo

    out = tmp_path / "demo-output"
    con = Console(record=True, width=120)
    summary = run_demo(
        out, size=192, epochs=1, samples_per_epoch=32, batch_size=8, rf_trees=10, progress=False, console=con
    )
    for name in (
        "agb_map.tif",
        "carbon_stock.json",
        "summary.json",
        "quicklook.png",
        "model/model.pt",
        "scene/stack.tif",
    ):
        assert (out / name).exists(), name
    assert (out / "quicklook.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with rasterio.open(out / "agb_map.tif") as ds, rasterio.open(out / "scene" / "stack.tif") as src:
        assert ds.crs == src.crs and ds.transform == src.transform and ds.shape == src.shape
        agb = ds.read(1, masked=True)
    assert float(agb.min()) >= 0 and np.isfinite(agb.compressed()).all()
    stock = json.loads((out / "carbon_stock.json").read_text())
    pred = stock["predicted"]
    assert pred["area_ha"] > 0
    assert abs(pred["co2e_total_t"] - pred["carbon_total_mg"] * 44 / 12) < 1e-6 * pred["co2e_total_t"]
    assert abs(pred["carbon_total_mg"] - 0.47 * pred["agb_total_mg"]) < 1e-6 * pred["agb_total_mg"]
    assert stock["true_agb_reference"]["area_ha"] == pred["area_ha"]
    assert (
        json.loads((out / "summary.json").read_text())["carbon_stock"]["co2e_total_t"]
        == summary["carbon_stock"]["co2e_total_t"]
    )
    # the demo ends with a site assessment and its offline report
    assessment = json.loads((out / "assessment" / "assessment.json").read_text())
    assert "biomass" in json.dumps(assessment)
    assert summary["files"]["report"].endswith(".html")
    assert Path(summary["files"]["report"]).exists()
    # the demo's model card carries the tracked training emissions, in the Hub's schema (read back by ModelCard)
    from huggingface_hub import ModelCard

    card = ModelCard.load(out / "model" / "README.md")
    tracked = json.loads((out / "model" / "emissions.json").read_text())
    assert card.data.co2_eq_emissions["emissions"] == pytest.approx(tracked["emissions_g"])
    text = con.export_text()
    assert "CO2e stock (t)" in text and "label noise floor" in text
