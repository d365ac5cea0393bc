"""Run tracking: codecarbon offline tracker as context manager / decorator."""

from __future__ import annotations

import csv
import json
import os

import pytest

from terracarbon.footprint import format_result, load_emissions, track_emissions
from terracarbon.footprint.track import RESULT_KEYS, detect_methods


def _work(n: int = 200_000) -> int:
    return sum(i * i for i in range(n))


def test_context_manager_writes_csv_and_json(tmp_path):
    with track_emissions(tmp_path / "run", "train", country_iso_code="deu") as t:
        _work()
    r = t.result
    assert set(RESULT_KEYS) <= set(r)
    assert r["error"] is None
    assert r["task_name"] == "train"
    assert r["country_iso_code"] == "DEU"
    assert r["energy_kwh"] > 0
    assert r["energy_kwh"] == pytest.approx(
        r["cpu_energy_kwh"] + r["gpu_energy_kwh"] + r["ram_energy_kwh"], rel=1e-6
    )
    assert r["emissions_g"] == pytest.approx(r["emissions_kg"] * 1000)
    # Germany's grid in codecarbon's offline table is a few hundred g/kWh
    assert 100 < r["carbon_intensity_g_per_kwh"] < 1000
    # no RAPL in CI containers -> an estimate; whatever it is, it is named
    assert r["method"] and r["method"] != "unavailable"
    assert "cpu" in r["methods"]
    assert r["hardware"]

    on_disk = json.loads((tmp_path / "run" / "emissions.json").read_text())
    assert on_disk["emissions_g"] == pytest.approx(r["emissions_g"])
    assert load_emissions(tmp_path / "run")["method"] == r["method"]
    rows = list(csv.DictReader((tmp_path / "run" / "emissions.csv").open()))
    assert len(rows) == 1
    assert rows[0]["project_name"] == "train"
    assert float(rows[0]["emissions"]) == pytest.approx(r["emissions_kg"])
    assert "Wh" in format_result(r) and r["method"] in format_result(r)


def test_decorator_tracks_every_call_and_propagates_errors(tmp_path):
    calls = []

    @track_emissions(tmp_path, "predict", country_iso_code="FRA")
    def predict(x):
        calls.append(x)
        if x < 0:
            raise ValueError("negative")
        return x * 2

    assert predict(21) == 42
    assert predict.result["country_iso_code"] == "FRA"
    with pytest.raises(ValueError, match="negative"):
        predict(-1)
    assert predict.result is not None and predict.result["energy_kwh"] is not None
    rows = list(csv.DictReader((tmp_path / "emissions.csv").open()))
    assert [r["project_name"] for r in rows] == ["predict", "predict"]
    assert calls == [21, -1]


def test_bad_country_is_a_config_error(tmp_path):
    from terracarbon.errors import ConfigError

    with pytest.raises(ConfigError, match="3-letter"):
        track_emissions(tmp_path, "x", country_iso_code="Germany")


def test_tracker_failure_never_breaks_the_run(tmp_path, monkeypatch):
    import codecarbon

    class Boom:
        def __init__(self, **kwargs):
            raise RuntimeError("no sensors")

    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", Boom)
    with track_emissions(tmp_path, "train") as t:
        value = _work(1000)
    assert value == _work(1000)
    assert t.result["energy_kwh"] is None
    assert "no sensors" in t.result["error"]
    assert t.result["method"] == "unavailable"
    assert "unavailable" in format_result(t.result)


def test_detect_methods_names_rapl_and_gpu():
    class CPU:
        _mode = "intel_rapl"

    class GPU:
        pass

    class RAM:
        pass

    class Tracker:
        _hardware = [CPU(), GPU(), RAM()]

    m = detect_methods(Tracker())
    assert m == {"cpu": "RAPL", "gpu": "NVML", "ram": "estimated from installed memory"}
    CPU._mode = "cpu_load"
    assert detect_methods(Tracker())["cpu"] == "estimated from CPU load (TDP)"


def test_region_changes_grid_intensity(tmp_path):
    intensity = {}
    for region in ("california", "wyoming"):
        with track_emissions(tmp_path / region, "x", country_iso_code="USA", region=region) as t:
            sum(range(10_000))
        assert t.result["region"] == region
        intensity[region] = t.result["carbon_intensity_g_per_kwh"]
    assert intensity["california"] < intensity["wyoming"]


def test_load_emissions_errors(tmp_path):
    from terracarbon.errors import InputError

    with pytest.raises(InputError, match="not found"):
        load_emissions(tmp_path)
    (tmp_path / "emissions.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="not a JSON object"):
        load_emissions(tmp_path)


def test_cached_probe_gives_the_same_tracker_config_as_a_cold_probe(tmp_path, monkeypatch):
    hc = pytest.importorskip("codecarbon.core.hardware_cache")
    from terracarbon.footprint import track as tr

    cache = tmp_path / "cache" / "probe.json"
    monkeypatch.setenv("TERRACARBON_PROBE_CACHE", str(cache))

    def config(t):
        tracker = t._tracker
        conf = {k: tracker._conf.get(k) for k in hc.CONF_KEYS}
        return conf, [hc._spec_from_hardware(h) for h in tracker._hardware]

    hc.clear_cache()  # a fresh process: codecarbon probes the machine
    with track_emissions(tmp_path / "cold", "cold") as cold:
        cold_config = config(cold)
    assert cold.result["probe"] == "probed" and cold.result["error"] is None
    assert cache.is_file()
    stored = json.loads(cache.read_text())
    assert stored["machine"]["cpu_count"] == os.cpu_count()

    hc.clear_cache()  # another fresh process: the probe now comes from the cache file
    with track_emissions(tmp_path / "cached", "cached") as cached:
        cached_config = config(cached)
    assert cached.result["probe"] == "cached" and cached.result["error"] is None
    assert cached_config == cold_config
    for key in ("method", "methods", "hardware", "cpu_model", "cpu_count", "gpu_count", "ram_power_w"):
        assert cached.result[key] == cold.result[key], key
    assert cached.result["energy_kwh"] is not None and cached.result["emissions_g"] >= 0
    rows = list(csv.DictReader((tmp_path / "cached" / "emissions.csv").open()))
    assert len(rows) == 1 and rows[0]["cpu_model"] == cold.result["cpu_model"]

    # another machine (or codecarbon version) must not reuse it
    from codecarbon import OfflineEmissionsTracker

    probe_tracker = OfflineEmissionsTracker(country_iso_code="USA", output_methods=[], log_level="error")
    hc.clear_cache()
    assert tr.install_cached_probe(probe_tracker) is True
    hc.clear_cache()
    real = tr.machine_fingerprint()
    monkeypatch.setattr(tr, "machine_fingerprint", lambda: {**real, "cpu_count": (real["cpu_count"] or 1) + 1})
    assert tr.install_cached_probe(probe_tracker) is False
    monkeypatch.setenv("TERRACARBON_PROBE_CACHE", "off")
    assert tr.probe_cache_path() is None and tr.install_cached_probe(probe_tracker) is False


def test_emissions_csv_appends_like_codecarbon(tmp_path):
    from terracarbon.footprint.track import append_emissions_csv

    path = tmp_path / "emissions.csv"
    append_emissions_csv(path, {"timestamp": "t1", "emissions": 1e-05, "region": None})
    append_emissions_csv(path, {"region": "x", "timestamp": "t2", "emissions": 2.0})
    rows = list(csv.DictReader(path.open()))
    assert [r["timestamp"] for r in rows] == ["t1", "t2"] and rows[1]["region"] == "x"
    assert rows[0]["region"] == "" and float(rows[0]["emissions"]) == 1e-05
    append_emissions_csv(path, {"other": 1})  # other columns: old file kept as .bak
    assert (tmp_path / "emissions.csv.bak").is_file()
    assert list(csv.DictReader(path.open())) == [{"other": "1"}]
