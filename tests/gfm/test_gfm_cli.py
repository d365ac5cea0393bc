"""``terracarbon gfm`` CLI: params table, pretrain, clear error + exit code 2 on bad input."""

from __future__ import annotations

from typer.testing import CliRunner

from terracarbon.cli.gfm import app

runner = CliRunner()


def test_params_command_reports_paper_ratio():
    res = runner.invoke(app, ["params", "--in-channels", "12", "--size", "tiny"])
    assert res.exit_code == 0, res.output
    assert "6,913" in res.output  # Swin-T frozen + one 3x3 conv head (768*9 + 1)
    assert "24,464,593" in res.output  # smp U-Net resnet34, 12 bands


def test_pretrain_command_bad_file_exits_2(tmp_path):
    res = runner.invoke(app, ["pretrain", str(tmp_path / "nope.tif"), "--out", str(tmp_path / "e.pt")])
    assert res.exit_code == 2
    assert "does not exist" in res.output


def test_pretrain_command_writes_encoder(stacks, tmp_path):
    out = tmp_path / "cli" / "enc.pt"
    args = ["pretrain", *map(str, stacks), "--out", str(out), "--img-size", "32", "--embed-dim", "16"]
    args += ["--depths", "1,1,1,1", "--num-heads", "1,2,4,8", "--window-size", "4", "--epochs", "1"]
    args += ["--tiles-per-epoch", "8", "--val-tiles", "4", "--batch-size", "4", "--mask-patch-size", "8"]
    args += ["--no-track"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert out.exists() and "held-out reconstruction L1" in res.output
