"""Hub miner against a local Hub look-alike: pagination, faults, broken cards, resume, real data."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from terracarbon.errors import ConfigError
from terracarbon.footprint.hub import HubError, fetch_dataset_sizes, mine_hub, read_models
from terracarbon.footprint.normalise import extract_metrics, normalise_co2

FAST = dict(timeout=0.4, backoff_s=0.01, min_interval_s=0.0, progress=False)


def _content(db):
    df = read_models(db).drop(columns=["mined_at"])
    return df.sort_values("model_id").reset_index(drop=True)


@pytest.mark.parametrize(
    ("card", "status", "grams"),
    [
        ({"co2_eq_emissions": 12.5}, "ok", 12.5),
        ({"co2_eq_emissions": {"emissions": 3, "source": "AutoTrain"}}, "ok", 3.0),
        ({"co2_eq_emissions": "0.5 kg"}, "ok", 500.0),
        ({"co2_eq_emissions": "12,3 g CO2eq"}, "ok", 12.3),
        ({"co2_eq_emissions": "1.2 tonnes"}, "ok", 1.2e6),
        ({"co2_eq_emissions": {"emissions": "40 kgCO2eq"}}, "ok", 40000.0),
        ({"co2_eq_emissions": {"emissions": 2, "unit": "kg"}}, "ok", 2000.0),
        ({"co2_eq_emissions": "lots"}, "malformed", None),
        ({"co2_eq_emissions": -4}, "malformed", None),
        ({"co2_eq_emissions": True}, "malformed", None),
        ({"co2_eq_emissions": {"source": "codecarbon"}}, "malformed", None),
        ({"co2_eq_emissions": "7 furlongs"}, "malformed", None),
        ({"license": "mit"}, "absent", None),
        ("not a mapping", "absent", None),
        (None, "absent", None),
    ],
)
def test_normalise_co2(card, status, grams):
    out = normalise_co2(card)
    assert out["co2_status"] == status
    if grams is None:
        assert out["co2_g"] is None
    else:
        assert out["co2_g"] == pytest.approx(grams)
    if status == "malformed":
        assert out["co2_note"]
        assert out["co2_raw"] == card["co2_eq_emissions"]


def test_extract_metrics_percent_and_names():
    card = {
        "model-index": [
            {
                "results": [
                    {"metrics": [{"type": "accuracy", "value": 91.5}, {"type": "rougeL", "value": "0.4"}]}
                ]
            }
        ]
    }
    assert extract_metrics(card) == {"accuracy": pytest.approx(0.915), "rougeL": pytest.approx(0.4)}
    assert extract_metrics({"model-index": [{"results": "broken"}]}) == {}


def test_mine_with_faults_stores_every_model_once(fake_hub, tmp_path):
    fake_hub.faults = {0: ["429"], 10: ["500", "500"], 20: ["timeout"]}
    sleeps = []
    res = mine_hub(tmp_path / "hub.sqlite", sleep=sleeps.append, **FAST)
    reporting = [it for it in fake_hub.items if "co2_eq_emissions" in it["tags"]]
    assert res.complete and not res.resumed
    assert res.models_stored == len(reporting) == 30
    assert res.pages == 3
    assert res.retries == 4
    assert res.status_counts["429"] == 1 and res.status_counts["500"] == 2
    assert res.status_counts["timeout"] == 1
    assert 1.0 in sleeps  # Retry-After honoured
    df = read_models(tmp_path / "hub.sqlite")
    assert df.model_id.is_unique and sorted(df.model_id) == sorted(it["id"] for it in reporting)
    # requests carried the expand fields and followed the Link cursors
    ok_paths = [p for p, outcome in fake_hub.requests if outcome == "200"]
    assert len(ok_paths) == 3 and all("expand=cardData" in p for p in ok_paths)
    assert "cursor=20" in ok_paths[-1]

    by = df.set_index("model_id")
    assert by.loc["org0/model-0000", "co2_status"] == "malformed"
    assert "no number" in by.loc["org0/model-0000", "co2_note"]
    assert by.loc["org1/model-0001", "co2_g"] == pytest.approx(500.0)
    assert by.loc["org3/model-0003", "card_error"].startswith("cardData is str")
    assert by.loc["org3/model-0003", "co2_reported"] == 0
    assert by.loc["org4/model-0004", "co2_status"] == "malformed"
    assert by.loc["org4/model-0004", "source"] == "codecarbon"
    good = by[by.co2_status == "ok"]
    assert len(good) == 27 and (good.co2_g >= 0).all()
    assert set(by.domain) <= {"NLP", "Computer Vision"}
    assert by.loc["org6/model-0006", "n_parameters"] == 1006
    assert by.loc["org6/model-0006", "size_bytes"] == 4 * 1006  # F32 weights
    assert by.loc["org6/model-0006", "size_source"] == "safetensors"


def test_rerun_resumes_and_completes(fake_hub, tmp_path):
    db = tmp_path / "hub.sqlite"
    first = mine_hub(db, limit=15, **FAST)
    assert first.models_stored == 15 and not first.complete
    second = mine_hub(db, **FAST)
    assert second.resumed and second.complete and second.models_stored == 30
    # 15 = page 0 + half of page 1: the half page is fetched again, nothing is stored twice
    assert second.pages == 2
    again = mine_hub(db, **FAST)
    assert again.pages == 0 and again.models_stored == 30
    with pytest.raises(ConfigError, match="different query"):
        mine_hub(db, filter_tag=None, **FAST)
    everything = mine_hub(db, filter_tag=None, restart=True, **FAST)
    assert everything.models_stored == 45 and everything.complete


def test_giving_up_then_rerun_gives_same_content(fake_hub, tmp_path):
    clean = tmp_path / "clean.sqlite"
    mine_hub(clean, **FAST)
    broken = tmp_path / "broken.sqlite"
    fake_hub.faults = {20: ["500"] * 5}
    with pytest.raises(HubError, match="giving up"):
        mine_hub(broken, max_retries=2, sleep=lambda s: None, **FAST)
    assert len(read_models(broken)) == 20
    fake_hub.faults = {}
    res = mine_hub(broken, **FAST)
    assert res.resumed and res.complete
    assert _content(broken).equals(_content(clean))


def test_killed_run_resumes_to_same_content(fake_hub, tmp_path):
    clean = tmp_path / "clean.sqlite"
    mine_hub(clean, **FAST)
    fake_hub.page_delay_s = 0.4
    db = tmp_path / "killed.sqlite"
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": fake_hub.url}
    code = (
        "from terracarbon.footprint.hub import mine_hub; "
        f"mine_hub({str(db)!r}, min_interval_s=0, progress=False)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.time() + 30
        pages = 0
        while time.time() < deadline and pages < 1:
            time.sleep(0.05)
            if db.exists():
                try:
                    with sqlite3.connect(db) as con:
                        pages = con.execute("SELECT COUNT(*) FROM pages").fetchone()[0]
                except sqlite3.OperationalError:
                    pages = 0
        assert pages >= 1, "the miner never stored a page"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    partial = len(read_models(db))
    assert 10 <= partial < 30
    fake_hub.page_delay_s = 0.0
    res = mine_hub(db, **FAST)
    assert res.resumed and res.complete
    assert _content(db).equals(_content(clean))


def test_bad_endpoint_and_db(tmp_path):
    with pytest.raises(ConfigError, match="http"):
        mine_hub(tmp_path / "x.sqlite", endpoint="ftp://example.org", progress=False)
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    from terracarbon.errors import InputError

    with pytest.raises(InputError, match="bad.sqlite"):
        mine_hub(bad, endpoint="http://127.0.0.1:9", progress=False)


def test_offline_mode_is_reported(tmp_path, monkeypatch):
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE"):
        mine_hub(tmp_path / "x.sqlite", endpoint="http://127.0.0.1:9", progress=False)


@pytest.mark.shared_data
def test_mine_real_hfco2_records(hfco2_rows, hfco2_items, make_fake_hub, tmp_path):
    hub = make_fake_hub(hfco2_items, page_size=250)
    hub.faults = {500: ["429"], 750: ["500"]}
    res = mine_hub(tmp_path / "real.sqlite", endpoint=hub.url, sleep=lambda s: None, **FAST)
    unique = {r["modelId"] for r in hfco2_rows}
    assert res.complete and res.models_stored == len(unique)
    df = read_models(tmp_path / "real.sqlite").set_index("model_id")
    expected = {r["modelId"]: float(r["co2_eq_emissions"]) for r in hfco2_rows}  # last one wins
    assert (df.co2_status == "ok").all()
    for mid, grams in expected.items():
        assert df.loc[mid, "co2_g"] == pytest.approx(grams)
    assert df.loc["distilgpt2", "training_type"] == "pretraining"
    assert df.loc["distilgpt2", "downloads"] == 1172830
    assert df.auto.sum() > 1000
    assert df.loc["distilgpt2", "size_bytes"] == 352833716  # no safetensors info: usedStorage


def test_dataset_sizes_are_looked_up_once(fake_hub, tmp_path):
    from terracarbon.footprint.classify import load_records

    db = tmp_path / "hub.sqlite"
    mine_hub(db, **FAST)
    fake_hub.datasets = {
        "ds0": {"dataset_info": {"dataset_size": 1000}},
        "ds1": {"dataset_info": [{"config_name": "a", "dataset_size": 10}, {"dataset_size": 5}]},
        "ds2": {"license": "mit"},
    }
    fake_hub.dataset_faults = {"ds0": ["429"], "ds1": ["503"]}
    kw = {k: v for k, v in FAST.items() if k != "timeout"}
    counts = fetch_dataset_sizes(db, sleep=lambda s: None, **kw)
    assert counts == {"ok": 2, "no size": 1, "not found": 1}
    n_requests = len(fake_hub.requests)
    assert fetch_dataset_sizes(db, **kw) == counts  # resumable: nothing asked twice
    assert len(fake_hub.requests) == n_requests
    rec = load_records(db=db).set_index("model_id")
    assert rec.loc["org4/model-0004", "datasets_size"] == 1000  # uses ds0 (i % 4 == 0)
    assert rec.loc["org1/model-0001", "datasets_size"] == 15  # ds1: two configurations summed
    assert np.isnan(rec.loc["org6/model-0006", "datasets_size"])  # ds2: card without a size
    assert np.isnan(rec.loc["org0/model-0007", "datasets_size"])  # ds3: not on the Hub


def test_fixture_speaks_the_api_huggingface_hub_expects(fake_hub):
    """huggingface_hub's own list_models pages through the local server and parses every item."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=fake_hub.url, token=False)
    models = list(api.list_models(filter="co2_eq_emissions", expand=["cardData", "downloads", "tags"]))
    assert len(models) == 30 and len({m.id for m in models}) == 30
    with_card = [m for m in models if m.card_data is not None and not isinstance(m.card_data, str)]
    assert any("co2_eq_emissions" in m.card_data for m in with_card)
    assert all(m.downloads is not None for m in models)


def test_all_models_listing_with_card_texts_resumes(make_fake_hub, make_items, tmp_path):
    """--all-models: reporting and silent models, the card texts the study's rules read, resumable."""
    from terracarbon.footprint.classify import classify, load_records
    from terracarbon.footprint.hub import fetch_card_texts

    items = make_items(24)
    hub = make_fake_hub(items, page_size=5)
    # model 2 reports nothing in its metadata but says so in its card text (HFPreprocessing cell 6)
    hub.readmes = {
        "org2/model-0002": "# m\n## Environmental Impact\n- Hardware Type: 1 x A100\n- Carbon Emitted: 0.25 kg\n",
        # the study's regex keeps the '**' of bold Markdown: no leading number, so no CO2e
        "org1/model-0008": "- **Carbon Emitted:** 0.25 kg\n",
        "org5/model-0005": "- Hardware Type: 2 x T4\n- Carbon Emitted: [More Information Needed]\n",
        "org6/model-0006": "no structured fields here",
    }
    db = tmp_path / "all.sqlite"
    hub.faults = {10: ["500"] * 3}
    with pytest.raises(HubError):
        mine_hub(db, endpoint=hub.url, filter_tag=None, max_retries=1, sleep=lambda s: None, **FAST)
    assert len(read_models(db)) == 10  # two pages kept: the checkpoint
    res = mine_hub(db, endpoint=hub.url, filter_tag=None, sleep=lambda s: None, **FAST)
    assert res.resumed and res.complete and res.models_stored == 24  # every model, reporting or not
    assert res.pages == 3  # only the pages not stored yet
    kw = {k: v for k, v in FAST.items() if k != "timeout"}
    hub.readme_faults = {"org5/model-0005": ["429"]}
    first = fetch_card_texts(db, endpoint=hub.url, limit=8, sleep=lambda s: None, **kw)
    assert sum(first.values()) == 8
    counts = fetch_card_texts(db, endpoint=hub.url, sleep=lambda s: None, **kw)
    assert counts == {"ok": 4, "no card": 20}
    readme_requests = [p for p, _ in hub.requests if p.endswith("README.md")]
    assert len(readme_requests) == 24 + 1  # each card asked once, plus the 429 retry
    rec = load_records(db=db).set_index("model_id")
    assert rec.loc["org2/model-0002", "co2_reported"] == 1
    assert rec.loc["org2/model-0002", "co2_eq_emissions"] == pytest.approx(250.0)
    assert rec.loc["org2/model-0002", "hardware_used"] == "1 x A100"
    classes = classify(records=load_records(db=db)).set_index("model_id")["reporting_class"]
    assert classes["org2/model-0002"] == "Energy Awareness"
    assert classes["org5/model-0005"] == "Context Reporting"  # hardware from the text, no CO2e
    assert classes["org1/model-0008"] == "Unknown Energy Efficiency"
    assert set(classes) <= {
        "Unknown Energy Efficiency", "Context Reporting", "Basic Energy Reporting", "Energy Awareness"
    }
