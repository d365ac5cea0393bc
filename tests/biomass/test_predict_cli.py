"""biomass predict (API and CLI): one call of the tiled engine, resume after a kill, bad input, evaluate/baseline CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from terracarbon.biomass.predict import predict_biomass
from terracarbon.cli import app
from terracarbon.errors import InputError

runner = CliRunner()


class Killed(Exception):
    pass


def test_killed_predict_resumes_to_identical_file(tiny_checkpoint, scenes, tmp_path):
    src = scenes[0].stack
    full = predict_biomass(
        tiny_checkpoint, src, tmp_path / "full.tif", tile_size=64, overlap=16, progress=False, track=False
    )
    dst = tmp_path / "resumed.tif"
    seen = []

    def kill_after_two(done, total):
        seen.append((done, total))
        if done == 2:
            raise Killed()

    with pytest.raises(Killed):
        predict_biomass(
            tiny_checkpoint,
            src,
            dst,
            tile_size=64,
            overlap=16,
            progress=False,
            track=False,
            on_strip=kill_after_two,
        )
    assert not dst.exists()  # no partial output under the final name
    total = seen[0][1]
    assert total > 3
    resumed_from = []
    predict_biomass(
        tiny_checkpoint,
        src,
        dst,
        tile_size=64,
        overlap=16,
        progress=False,
        track=False,
        on_strip=lambda d, t: resumed_from.append(d),
    )
    assert resumed_from[0] == 3  # finished strips were not redone
    assert dst.read_bytes() == full.read_bytes()
    with rasterio.open(dst) as ds:
        a = ds.read(1)
        assert ds.crs is not None and ds.descriptions[0] == "agb_mg_per_ha"
        assert ds.transform == rasterio.open(src).transform
    assert np.isfinite(a).all() and a.min() >= 0


def test_cli_predict_and_bad_input(tiny_checkpoint, scenes, tmp_path):
    out = tmp_path / "agb.tif"
    r = runner.invoke(
        app,
        [
            "biomass",
            "predict",
            "--checkpoint",
            str(tiny_checkpoint),
            str(scenes[0].stack),
            str(out),
            "--tile-size",
            "128",
            "--overlap",
            "16",
            "--batch-size",
            "4",
            "--backend",
            "channels-last",
        ],
    )
    assert r.exit_code == 0, r.output
    with rasterio.open(out) as ds:
        assert ds.count == 1 and ds.shape == (256, 256) and ds.dtypes[0] == "float32"
    # predict runs are tracked
    assert (tmp_path / "agb.run" / "emissions.json").exists()
    # wrong band count: clear message naming the file, exit 2, no output
    bad = tmp_path / "three_bands.tif"
    with rasterio.open(scenes[0].stack) as ds:
        prof = ds.profile
        data = ds.read([1, 2, 3])
    prof.update(driver="GTiff", count=3)
    with rasterio.open(bad, "w", **prof) as dst:
        dst.write(data)
    r = runner.invoke(
        app,
        ["biomass", "predict", "--checkpoint", str(tiny_checkpoint), str(bad), str(tmp_path / "bad_out.tif")],
    )
    assert r.exit_code == 2
    assert "three_bands.tif" in r.output and "3 band" in r.output
    assert not (tmp_path / "bad_out.tif").exists()
    # not a checkpoint
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(InputError, match="junk.pt"):
        predict_biomass(junk, scenes[0].stack, tmp_path / "x.tif", progress=False, track=False)


def test_predict_backends_agree(trained, scenes, tmp_path):
    maps = {}
    for backend in ("eager", "onnx"):
        p = predict_biomass(
            trained.checkpoint,
            scenes[1].stack,
            tmp_path / f"{backend}.tif",
            backend=backend,
            progress=False,
            track=False,
        )
        with rasterio.open(p) as ds:
            maps[backend] = ds.read(1)
    assert np.abs(maps["eager"] - maps["onnx"]).max() < 1e-2  # Mg/ha (1e-3 in model units x target scale)


def test_cli_evaluate_and_baseline(trained, scenes, tmp_path):
    js = tmp_path / "eval.json"
    r = runner.invoke(
        app,
        [
            "biomass",
            "evaluate",
            "--checkpoint",
            str(trained.checkpoint),
            str(scenes[1].root),
            "--json",
            str(js),
        ],
    )
    assert r.exit_code == 0, r.output
    rep = json.loads(js.read_text())
    assert rep["rmse"] == pytest.approx(trained.metrics["rmse"], rel=1e-6)
    assert "500+" in rep["per_bin"] and "RMSE" in r.output
    r = runner.invoke(
        app,
        [
            "biomass",
            "baseline",
            str(scenes[0].root),
            "--test",
            str(scenes[1].root),
            "--n-estimators",
            "20",
            "--out",
            str(tmp_path / "rf"),
        ],
    )
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "rf" / "metrics.json").read_text())
    assert m["n"] == rep["n"] and m["rmse"] > 0
    assert (tmp_path / "rf" / "rf.joblib").exists()


def test_second_run_on_the_same_output_stops_naming_the_first(tiny_checkpoint, scenes, tmp_path):
    """Two `biomass predict` runs writing one map: the second stops at once (exit 2, one line naming the live
    process); once that process is gone its lock is stale and a new run takes it over and finishes."""
    import os
    import subprocess
    import sys

    out = tmp_path / "same.tif"
    lock = tmp_path / ".same.tif.lock"
    first = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    args = ["biomass", "predict", "--checkpoint", str(tiny_checkpoint), str(scenes[0].stack), str(out),
            "--tile-size", "64", "--overlap", "16"]
    try:
        lock.write_text(json.dumps({"pid": first.pid, "host": os.uname().nodename, "cmd": "terracarbon biomass predict"}))
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 2, r.output
        assert f"process {first.pid}" in r.output and "same.tif" in r.output
        assert "Traceback" not in r.output and not out.exists()
    finally:
        first.kill()
        first.wait()
    r = CliRunner().invoke(app, args)  # the owner is dead: stale lock taken over
    assert r.exit_code == 0, r.output
    assert out.exists() and not lock.exists()
