"""`terracarbon footprint` commands, driven through typer's CliRunner on the sub-app."""

from __future__ import annotations

import json
import sys

from huggingface_hub import ModelCard
from typer.testing import CliRunner

from terracarbon.cli.footprint import app

runner = CliRunner()


def test_track_runs_command_and_returns_its_exit_code(tmp_path):
    out = tmp_path / "run"
    code = "import sys; sum(i * i for i in range(200000)); sys.exit(3)"
    res = runner.invoke(
        app, ["track", "--out", str(out), "--country", "FRA", "--", sys.executable, "-c", code]
    )
    assert res.exit_code == 3, res.output
    rec = json.loads((out / "emissions.json").read_text())
    assert rec["returncode"] == 3 and rec["command"][-1] == code
    assert rec["country_iso_code"] == "FRA" and rec["energy_kwh"] > 0
    assert "measurement method" in res.output and rec["method"] in res.output
    assert (out / "emissions.csv").is_file()

    ok = runner.invoke(app, ["track", "--out", str(out), "--", sys.executable, "-c", "pass"])
    assert ok.exit_code == 0
    assert len((out / "emissions.csv").read_text().strip().splitlines()) == 3  # header + 2 runs

    missing = runner.invoke(app, ["track", "--out", str(out), "--", "no-such-program-xyz"])
    assert missing.exit_code == 127


def test_track_errors(tmp_path):
    res = runner.invoke(app, ["track", "--out", str(tmp_path), "--country", "Narnia", "--", "true"])
    assert res.exit_code == 2 and "3-letter" in res.output


def test_card_from_tracked_run(tmp_path):
    run = tmp_path / "run"
    assert runner.invoke(app, ["track", "--out", str(run), "--", sys.executable, "-c", "pass"]).exit_code == 0
    tracked = json.loads((run / "emissions.json").read_text())
    res = runner.invoke(
        app,
        [
            "card",
            str(tmp_path / "model"),
            "--model-id",
            "tc/unet",
            "--run",
            str(run),
            "--dataset",
            "synthetic",
            "--metric",
            "rmse=12.5",
            "--metric",
            "r2=0.7",
            "--pipeline-tag",
            "image-segmentation",
        ],
    )
    assert res.exit_code == 0, res.output
    card = ModelCard.load(tmp_path / "model" / "README.md")
    assert card.data.co2_eq_emissions["emissions"] == tracked["emissions_g"]
    assert card.data.co2_eq_emissions["hardware_used"] == tracked["hardware"]
    bad = runner.invoke(app, ["card", str(tmp_path / "m2"), "--model-id", "x", "--metric", "rmse"])
    assert bad.exit_code == 2 and "name=value" in bad.output


def test_mine_classify_analyse(fake_hub, tmp_path):
    db = tmp_path / "hub.sqlite"
    res = runner.invoke(app, ["mine", "--db", str(db), "--limit", "12", "--min-interval", "0"])
    assert res.exit_code == 0, res.output
    assert "models stored" in res.output
    fake_hub.datasets = {"ds0": {"dataset_info": {"dataset_size": 4096}}}
    res = runner.invoke(app, ["mine", "--db", str(db), "--min-interval", "0", "--dataset-sizes"])  # resumes
    assert res.exit_code == 0 and "True" in res.output
    assert "dataset sizes" in res.output and "not found" in res.output
    from terracarbon.footprint.hub import read_models

    assert len(read_models(db)) == 30
    fake_hub.readmes = {"org2/model-0002": "- Carbon Emitted: 3 g\n- Hardware Type: 1 x T4\n"}
    res = runner.invoke(
        app, ["mine", "--db", str(db), "--min-interval", "0", "--card-text", "unreported", "--card-text-limit", "5"]
    )
    assert res.exit_code == 0, res.output
    assert "card texts" in res.output and "no card" in res.output
    bad = runner.invoke(app, ["mine", "--db", str(db), "--min-interval", "0", "--card-text", "some"])
    assert bad.exit_code == 2 and "unreported" in bad.output

    res = runner.invoke(app, ["classify", "--db", str(db), "--out", str(tmp_path / "classes.csv")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "classes.csv").read_text().count("\n") == 31

    res = runner.invoke(app, ["analyse", "--db", str(db), "--out", str(tmp_path / "analysis")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "analysis" / "summary.md").is_file()
    assert (tmp_path / "analysis" / "classes.csv").is_file()
    assert (tmp_path / "analysis" / "replication.csv").is_file()
    res = runner.invoke(app, ["classify", "--db", str(db), "--out", str(tmp_path / "c2.csv"), "--corrected"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "c2.csv").read_text().count("\n") == 31
    assert list((tmp_path / "analysis").glob("*.png"))

    res = runner.invoke(app, ["analyse", "--csv", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "nope.csv" in res.output
