"""Mask R-CNN for individual tree crowns (arch ``"maskrcnn"`` in :mod:`terracarbon.models.registry`).

OAM-TCD's reference instance model is Mask R-CNN (Detectron2, ResNet-50-FPN, ImageNet-pretrained). Here it is
torchvision's :class:`~torchvision.models.detection.MaskRCNN` built without any download (``weights=None``); a
backbone can be initialised from a *local* weights file (a torchvision ``resnet*``/``mobilenet_v3_large`` state
dict, ``.pt``/``.pth`` or ``.safetensors``). Small backbones (``resnet18``, ``resnet34``, ``mobilenet_v3_large``),
narrow FPN/heads (``fpn_channels``) and small ``min_size``/``max_size`` keep CPU runs tractable::

    model = build_model({"arch": "maskrcnn", "backbone": "resnet18", "fpn_channels": 64, "min_size": 160})

Inputs follow torchvision's detection convention: a list of float ``3×H×W`` tensors scaled to 0–1 (the model
normalises internally with ``image_mean``/``image_std``); in training mode targets are dicts with ``boxes`` (xyxy),
``labels`` (1 = tree) and ``masks`` (``N×H×W`` uint8).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from terracarbon.errors import InputError
from terracarbon.models.registry import register_arch

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")
MOBILENETS = ("mobilenet_v3_large",)
BACKBONES = RESNETS + MOBILENETS


def _load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.exists():
        raise InputError(path, "backbone weights file does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001
        raise InputError(path, f"not a readable weights file ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError(path, "weights file does not hold a state dict")
    return state


def _norm_layer(norm: str):
    from torchvision.ops.misc import FrozenBatchNorm2d

    if norm == "batch":
        return nn.BatchNorm2d
    if norm == "frozen":
        return FrozenBatchNorm2d
    raise ValueError(f"norm must be 'batch' or 'frozen', not {norm!r}")


def _resnet_backbone(
    name: str,
    *,
    fpn_channels: int,
    trainable_layers: int,
    norm: str,
    weights_path: str | Path | None,
) -> nn.Module:
    import torchvision
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    body = getattr(torchvision.models, name)(weights=None, norm_layer=_norm_layer(norm))
    if weights_path is not None:
        state = _load_state_dict(weights_path)
        state = {k.removeprefix("backbone.body.").removeprefix("module."): v for k, v in state.items()}
        missing, _unexpected = body.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing:
            raise InputError(
                weights_path, f"not {name} weights: {len(missing)} missing keys, e.g. {missing[:3]}"
            )
    layers = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        layers.append("bn1")
    for pname, p in body.named_parameters():
        if all(not pname.startswith(layer) for layer in layers):
            p.requires_grad_(False)
    c = body.inplanes // 8  # channels of layer1 (64 for resnet18/34, 256 for resnet50+)
    return BackboneWithFPN(
        body,
        return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
        in_channels_list=[c, c * 2, c * 4, c * 8],
        out_channels=fpn_channels,
        extra_blocks=LastLevelMaxPool(),
    )


def _mobilenet_backbone(
    name: str, *, fpn_channels: int, trainable_layers: int, norm: str, weights_path: str | Path | None
) -> nn.Module:
    import torchvision
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    net = getattr(torchvision.models, name)(weights=None, norm_layer=_norm_layer(norm))
    if weights_path is not None:
        state = _load_state_dict(weights_path)
        missing, _ = net.load_state_dict(state, strict=False)
        missing = [k for k in missing if k.startswith("features.")]
        if missing:
            raise InputError(
                weights_path, f"not {name} weights: {len(missing)} missing keys, e.g. {missing[:3]}"
            )
    features = net.features
    stage_indices = (
        [0] + [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)] + [len(features) - 1]
    )
    num_stages = len(stage_indices)
    freeze_before = len(features) if trainable_layers == 0 else stage_indices[num_stages - trainable_layers]
    for b in features[:freeze_before]:
        for p in b.parameters():
            p.requires_grad_(False)
    returned = [num_stages - 2, num_stages - 1]
    return_layers = {f"{stage_indices[k]}": str(v) for v, k in enumerate(returned)}
    in_channels_list = [features[stage_indices[i]].out_channels for i in returned]
    return BackboneWithFPN(
        features, return_layers, in_channels_list, fpn_channels, extra_blocks=LastLevelMaxPool()
    )


@register_arch("maskrcnn")
def build_maskrcnn(
    num_classes: int = 2,
    backbone: str = "resnet18",
    fpn_channels: int = 256,
    trainable_layers: int = 5,
    norm: str = "batch",
    backbone_weights: str | Path | None = None,
    min_size: int = 512,
    max_size: int = 1024,
    anchor_sizes: Sequence[int] = (16, 32, 64, 128, 256),
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    representation_size: int | None = None,
    mask_head_channels: int | None = None,
    box_detections_per_img: int = 200,
    box_score_thresh: float = 0.05,
    rpn_batch_size_per_image: int = 256,
    box_batch_size_per_image: int = 512,
    **kwargs: Any,
) -> nn.Module:
    """Build a torchvision Mask R-CNN for tree crowns, with no pretrained download.

    Args:
        num_classes: classes including background (2: background + tree).
        backbone: ``resnet18`` (default, CPU friendly), ``resnet34``, ``resnet50``, ``resnet101`` or
            ``mobilenet_v3_large``.
        fpn_channels: FPN width (torchvision's default 256; 64 is much faster on CPU).
        trainable_layers: backbone stages left trainable (5 = all, the right choice without pretrained weights).
        norm: ``"batch"`` (trainable BatchNorm, for training from scratch) or ``"frozen"`` (FrozenBatchNorm, for
            fine-tuning from ``backbone_weights``).
        backbone_weights: optional local file with ImageNet-style weights for the backbone; never downloaded.
        min_size, max_size: torchvision's internal resize bounds (images are rescaled so the short side is
            ``min_size``); keep them at the tile size to avoid resampling.
        anchor_sizes: one anchor size per FPN level (pixels), small for 10 cm crowns on small tiles.
        representation_size, mask_head_channels: box/mask head widths (default: 1024/256, or narrower when
            ``fpn_channels`` < 256).
        **kwargs: passed to :class:`torchvision.models.detection.MaskRCNN`.
    """
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads

    if backbone in RESNETS:
        body = _resnet_backbone(
            backbone,
            fpn_channels=fpn_channels,
            trainable_layers=trainable_layers,
            norm=norm,
            weights_path=backbone_weights,
        )
        n_levels = 5
    elif backbone in MOBILENETS:
        body = _mobilenet_backbone(
            backbone,
            fpn_channels=fpn_channels,
            trainable_layers=min(trainable_layers, 6),
            norm=norm,
            weights_path=backbone_weights,
        )
        n_levels = 3
    else:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    sizes = tuple(anchor_sizes)
    if len(sizes) < n_levels:
        sizes = sizes + tuple(sizes[-1] * 2 ** (i + 1) for i in range(n_levels - len(sizes)))
    sizes = sizes[:n_levels]
    anchor_gen = AnchorGenerator(
        sizes=tuple((int(s),) for s in sizes), aspect_ratios=(tuple(aspect_ratios),) * n_levels
    )
    if representation_size is None:
        representation_size = 1024 if fpn_channels >= 256 else max(128, 4 * fpn_channels)
    if mask_head_channels is None:
        mask_head_channels = 256 if fpn_channels >= 256 else fpn_channels
    box_head = TwoMLPHead(fpn_channels * 7 * 7, representation_size)
    mask_head = MaskRCNNHeads(fpn_channels, (mask_head_channels,) * 4, 1)
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

    return MaskRCNN(
        body,
        num_classes=None,
        min_size=min_size,
        max_size=max_size,
        rpn_anchor_generator=anchor_gen,
        box_head=box_head,
        box_predictor=FastRCNNPredictor(representation_size, num_classes),
        mask_head=mask_head,
        mask_predictor=MaskRCNNPredictor(mask_head_channels, mask_head_channels, num_classes),
        box_detections_per_img=box_detections_per_img,
        box_score_thresh=box_score_thresh,
        rpn_batch_size_per_image=rpn_batch_size_per_image,
        box_batch_size_per_image=box_batch_size_per_image,
        **kwargs,
    )


def spec_for_checkpoint(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec to store in a checkpoint: drops ``backbone_weights`` (the weights are in the state dict)."""
    return {k: v for k, v in spec.items() if k != "backbone_weights"}


@contextlib.contextmanager
def native_resolution(model: nn.Module, height: int, width: int) -> Iterator[nn.Module]:
    """Run a torchvision detection model on ``height``×``width`` images without its internal resize.

    torchvision rescales every image so its short side is ``min_size``; a model trained on 512 px crops would see a
    2048 px evaluation tile at a quarter of its ground resolution. Inside this block images keep their pixel size (the
    10 cm ground resolution the model was trained at). Models without a ``transform`` are left alone.
    """
    t = getattr(model, "transform", None)
    if t is None or not hasattr(t, "min_size"):
        yield model
        return
    old = (t.min_size, t.max_size)
    t.min_size, t.max_size = (int(min(height, width)),), int(max(height, width))
    try:
        yield model
    finally:
        t.min_size, t.max_size = old
