"""Mask R-CNN builder (registry arch "maskrcnn"): forward passes, local backbone weights, checkpoints."""

from __future__ import annotations

import pytest
import torch
import torchvision

from terracarbon.errors import InputError
from terracarbon.models.registry import build_model, load_checkpoint, save_checkpoint

SMALL = {"arch": "maskrcnn", "backbone": "resnet18", "fpn_channels": 16, "min_size": 64, "max_size": 64}


def _target():
    masks = torch.zeros(1, 64, 64, dtype=torch.uint8)
    masks[0, 10:30, 12:28] = 1
    return {"boxes": torch.tensor([[12.0, 10.0, 28.0, 30.0]]), "labels": torch.tensor([1]), "masks": masks}


def test_registry_builds_trainable_maskrcnn():
    torch.manual_seed(0)
    model = build_model(SMALL)
    assert isinstance(model, torchvision.models.detection.MaskRCNN)
    model.train()
    losses = model([torch.rand(3, 64, 64)], [_target()])
    assert set(losses) == {
        "loss_classifier",
        "loss_box_reg",
        "loss_mask",
        "loss_objectness",
        "loss_rpn_box_reg",
    }
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(3, 64, 64)])[0]
    assert set(out) >= {"boxes", "scores", "labels", "masks"} and out["masks"].shape[1:] == (1, 64, 64)


def test_local_backbone_weights_are_loaded_not_downloaded(tmp_path):
    state = torchvision.models.resnet18(weights=None).state_dict()
    state["conv1.weight"] = torch.full_like(state["conv1.weight"], 0.25)
    path = tmp_path / "resnet18_imagenet.pth"
    torch.save(state, path)
    model = build_model({**SMALL, "backbone_weights": str(path), "norm": "frozen", "trainable_layers": 3})
    body = model.backbone.body
    assert torch.all(body.conv1.weight == 0.25)
    assert not body.conv1.weight.requires_grad and body.layer4[0].conv1.weight.requires_grad
    torch.save({"something": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(InputError, match="missing keys"):
        build_model({**SMALL, "backbone_weights": str(tmp_path / "bad.pth")})
    with pytest.raises(InputError, match="does not exist"):
        build_model({**SMALL, "backbone_weights": str(tmp_path / "none.pth")})


def test_checkpoint_round_trip_without_weights_path(tmp_path):
    from terracarbon.models.crowns import spec_for_checkpoint

    torch.manual_seed(1)
    spec = {**SMALL, "backbone_weights": "/somewhere/else.pth"}
    model = build_model(SMALL).eval()
    save_checkpoint(tmp_path / "m.pt", model, spec_for_checkpoint(spec), {"task": "instance"})
    loaded, spec2, meta = load_checkpoint(tmp_path / "m.pt")
    assert "backbone_weights" not in spec2 and meta["task"] == "instance"
    x = [torch.rand(3, 64, 64)]
    with torch.no_grad():
        a, b = model(x)[0], loaded(x)[0]
    torch.testing.assert_close(a["scores"], b["scores"])


def test_mobilenet_backbone_and_bad_name():
    model = build_model({**SMALL, "backbone": "mobilenet_v3_large"}).eval()
    with torch.no_grad():
        out = model([torch.rand(3, 64, 64)])[0]
    assert "masks" in out
    with pytest.raises(ValueError, match="unknown backbone"):
        build_model({**SMALL, "backbone": "vgg11"})
