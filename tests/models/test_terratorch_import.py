"""TerraTorch import: granite layout (keys/shapes), checkpoint reading, engine equality, and the cross-check with
TerraTorch itself (skipped when the ``peers`` extra is absent: ``pip install -e '.[peers]'``)."""

from __future__ import annotations

import ast
import copy
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from terracarbon.errors import InputError

GRANITE = Path(__file__).resolve().parents[2].parent / "shared" / "models" / "granite-geospatial-biomass"
HLS6 = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]
MEANS = [547.36707, 898.5121, 1020.9082, 2665.5352, 2340.584, 1610.1407]
STDS = [411.4701, 558.54065, 815.94025, 812.4403, 1113.7145, 1067.641]
# a granite-layout network, reduced in width and depth so that a forward takes well under a second
SMALL = {"backbone_embed_dim": 32, "backbone_depths": [2, 2, 2, 2], "backbone_num_heads": [1, 2, 4, 8]}
runner = CliRunner()


def _granite() -> Path:
    if not (GRANITE / "config.yaml").exists():
        pytest.skip(f"../shared/models absent: {GRANITE} does not exist (a user's clone has no ../shared)")
    return GRANITE


def small_config(tmp_path: Path, **extra) -> Path:
    """The granite config with a reduced Swin (TerraTorch routes ``backbone_*`` keys to prithvi_swin_B)."""
    cfg = yaml.safe_load((_granite() / "config.yaml").read_text())
    cfg["model"]["init_args"]["model_args"].update({**SMALL, **extra})
    p = tmp_path / "small.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def perturb(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Seeded non-trivial weights: norms and biases away from 1/0, BN statistics set, position biases visible."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if "relative_position_bias_table" in name:
                p.copy_(0.5 * r)
            elif p.ndim == 1 and ("norm" in name or "bn" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * r)
            elif p.ndim == 1:
                p.copy_(0.1 * r)
            else:
                p.add_(0.02 * r)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
        head_bias = [p for n, p in model.named_parameters() if n.startswith("head.head.") and n.endswith("bias")]
        head_bias[-1].fill_(1.0)  # the final ReLU then passes most pixels: outputs are not all zero
    return model


def _tt_checkpoint(model: torch.nn.Module, path: Path, infix: bool = False) -> Path:
    sd = {}
    for k, v in model.state_dict().items():
        if infix and k.startswith("encoder."):
            k = "encoder._timm_module." + k[len("encoder.") :]
        sd["model." + k] = v
    torch.save({"state_dict": sd, "epoch": 3, "global_step": 30, "pytorch-lightning_version": "2.1.1"}, path)
    return path


def _hls_tif(path: Path, size: int = 224, seed: int = 0) -> np.ndarray:
    from terracarbon.raster.io import write_geotiff

    rng = np.random.default_rng(seed)
    arr = (np.array(MEANS)[:, None, None] + np.array(STDS)[:, None, None] * rng.standard_normal((6, size, size)))
    arr = np.clip(arr, 1, 9000).astype(np.float32)
    from affine import Affine

    write_geotiff(
        path,
        arr,
        crs="EPSG:32722",
        transform=Affine(30, 0, 500000, 0, -30, 7000000),
        band_descriptions=HLS6,
        tags={"TERRACARBON_UNITS": "reflectance_x10000"},
    )
    return arr


def _normalise(arr: np.ndarray) -> torch.Tensor:
    x = (arr - np.array(MEANS, np.float32)[:, None, None]) / np.array(STDS, np.float32)[:, None, None]
    return torch.from_numpy(x.astype(np.float32))[None]


# --------------------------------------------------------------------------------------------- no peer needed


def test_granite_layout_keys_and_shapes():
    """The network built from the released config has exactly the checkpoint's 445 keys, shapes and dtypes."""
    from terracarbon.models.registry import build_model
    from terracarbon.models.terratorch_import import read_terratorch_config

    d = _granite()
    cfg = read_terratorch_config(d / "config.yaml")
    assert cfg.backbone == "prithvi_swin_B" and cfg.bands == HLS6
    assert cfg.mean == pytest.approx(MEANS) and cfg.std == pytest.approx(STDS)
    assert cfg.input_units == "reflectance_x10000"
    s = cfg.spec
    assert (s["embed_dim"], s["depths"], s["num_heads"]) == (128, [2, 2, 18, 2], [4, 8, 16, 32])
    assert s["decoder_channels"] == 32 and s["head_learned_upscale_layers"] == 2
    assert s["head_final_act"] == "torch.nn.ReLU" and s["head_dropout"] == pytest.approx(0.16194593880230534)
    with torch.device("meta"):
        model = build_model(s)
    mine = {"model." + k: (list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()}
    rows = [line.rstrip("\n").split("\t") for line in (d / "checkpoint_keys.tsv").read_text().splitlines()[1:]]
    ref = {k: (ast.literal_eval(shape), dtype) for k, shape, dtype in rows}
    assert len(ref) == 445
    assert sorted(set(ref) - set(mine)) == [] and sorted(set(mine) - set(ref)) == []
    assert {k: v for k, v in mine.items() if ref[k] != v} == {}


def test_import_roundtrip_and_engine_equals_forward(tmp_path):
    """Lightning file (with the 0.99.x ``_timm_module.`` infix) -> model.pt; `biomass predict` on 224² = forward."""
    from terracarbon.cli import app
    from terracarbon.models.registry import build_model, load_checkpoint
    from terracarbon.models.terratorch_import import read_terratorch_config

    cfg_path = small_config(tmp_path)
    spec = read_terratorch_config(cfg_path).spec
    ref = perturb(build_model(spec)).eval()
    ckpt = _tt_checkpoint(ref, tmp_path / "model.ckpt", infix=True)
    r = runner.invoke(
        app, ["models", "import", "terratorch", "--config", str(cfg_path), "--checkpoint", str(ckpt), "--out",
              str(tmp_path / "m.pt")]
    )
    assert r.exit_code == 0, r.output
    model, spec2, meta = load_checkpoint(tmp_path / "m.pt")
    assert meta["bands"] == HLS6 and meta["input_units"] == "reflectance_x10000" and meta["tile_size"] == 224
    assert meta["mean"] == pytest.approx(MEANS) and meta["task"] == "regression"
    for k, v in ref.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k

    arr = _hls_tif(tmp_path / "in.tif")
    with torch.no_grad():
        want = ref(_normalise(arr))[0, 0].numpy()
    assert (want > 0).mean() > 0.3 and want.std() > 1e-3  # a non-trivial map
    r = runner.invoke(
        app,
        ["biomass", "predict", "--checkpoint", str(tmp_path / "m.pt"), str(tmp_path / "in.tif"),
         str(tmp_path / "out.tif"), "--tile-size", "224", "--overlap", "0"],
    )
    assert r.exit_code == 0, r.output
    import rasterio

    with rasterio.open(tmp_path / "out.tif") as ds:
        got = ds.read(1)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_bad_inputs_are_clear(tmp_path):
    from terracarbon.models.registry import build_model
    from terracarbon.models.terratorch_import import import_terratorch, read_terratorch_config

    cfg_path = small_config(tmp_path)
    model = build_model(read_terratorch_config(cfg_path).spec)
    sd = {"model." + k: v for k, v in model.state_dict().items() if "fpn_bottleneck" not in k}
    sd["model.decoder.lateral_convs.0.conv.weight"] = torch.zeros(3, 3, 1, 1)
    torch.save(sd, tmp_path / "bare.pt")
    with pytest.raises(InputError, match=r"missing 6: decoder.fpn_bottleneck.*mis-shaped 1"):
        import_terratorch(cfg_path, tmp_path / "bare.pt", tmp_path / "x.pt")
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["model"]["init_args"]["model_args"]["backbone"] = "prithvi_eo_v2_300"
    (tmp_path / "vit.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(InputError, match="temporal patch embedding"):
        read_terratorch_config(tmp_path / "vit.yaml")
    bad = copy.deepcopy(cfg)
    bad["model"]["init_args"]["model_args"]["backbone"] = "prithvi_swin_B"
    bad["data"]["init_args"]["means"] = [1.0, 2.0]
    (tmp_path / "means.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(InputError, match="2 band means for 6 model bands"):
        read_terratorch_config(tmp_path / "means.yaml")


# ----------------------------------------------------------------------------------- against TerraTorch itself

HAS_TERRATORCH = importlib.util.find_spec("terratorch") is not None
needs_terratorch = pytest.mark.skipif(
    not HAS_TERRATORCH,
    reason="terratorch not installed (peer cross-check: python -m venv .venv-peers && "
    ".venv-peers/bin/pip install -e '.[dev,peers]')",
)


def _terratorch_task(cfg_path: Path):
    """TerraTorch's own PixelwiseRegressionTask from the config (matmul precision reset after the import)."""
    import terratorch  # noqa: F401  (registers the backbones; sets the precision to "medium")
    from terratorch.tasks import PixelwiseRegressionTask

    torch.set_float32_matmul_precision("highest")  # else fp32 matmuls may run in bf16: outputs drift by 1e-2
    init = dict(yaml.safe_load(cfg_path.read_text())["model"]["init_args"])
    init.pop("tiled_inference_parameters", None)
    return PixelwiseRegressionTask(**init)


@needs_terratorch
def test_forward_equals_terratorch(tmp_path):
    """TerraTorch's model (random seeded, perturbed) -> Lightning state dict -> import: outputs equal within 1e-4."""
    from terracarbon.cli import app
    from terracarbon.models.registry import load_checkpoint
    from terracarbon.models.terratorch_import import import_terratorch

    cfg_path = small_config(tmp_path)
    task = _terratorch_task(cfg_path)
    perturb(task.model).eval()
    torch.save({"state_dict": task.state_dict(), "epoch": 1}, tmp_path / "tt.ckpt")
    import_terratorch(cfg_path, tmp_path / "tt.ckpt", tmp_path / "m.pt")
    model, _, _ = load_checkpoint(tmp_path / "m.pt")
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for shape in ((2, 6, 224, 224), (1, 6, 100, 132)):
            x = torch.randn(shape, generator=g)
            want = task.model(x).output
            got = model(x)[:, 0]
            assert want.shape == got.shape
            assert float(want.std()) > 1e-3
            torch.testing.assert_close(got, want, atol=1e-4, rtol=0)

    # the interface promise: `biomass predict ... --tile-size 224 --overlap 0` on a 224² input = TerraTorch's forward
    arr = _hls_tif(tmp_path / "in.tif", seed=2)
    with torch.no_grad():
        want = task.model(_normalise(arr)).output[0].numpy()
    r = runner.invoke(
        app,
        ["biomass", "predict", "--checkpoint", str(tmp_path / "m.pt"), str(tmp_path / "in.tif"),
         str(tmp_path / "out.tif"), "--tile-size", "224", "--overlap", "0"],
    )
    assert r.exit_code == 0, r.output
    import rasterio

    with rasterio.open(tmp_path / "out.tif") as ds:
        np.testing.assert_allclose(ds.read(1), want, atol=1e-4, rtol=0)
