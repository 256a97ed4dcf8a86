"""The width axis: the decoder's channels and the ResNet / ConvNeXt stage widths scale together."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from mtlbench.models import MultiTaskNet
from mtlbench.models.errors import ModelConfigError

DEPTH = SimpleNamespace(name="depth", kind="depth", channels=1)


def _parameters(net: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in net.parameters())


@pytest.mark.parametrize(("backbone", "stages"), [("test_resnet", [16, 24, 96, 48]), ("test_convnext", [16, 16, 24, 32])])
def test_width_scales_backbone_stages_and_decoder(backbone, stages):
    half, full, double = (MultiTaskNet([DEPTH], backbone=backbone, decoder_channels=32, width=w) for w in (0.5, 1.0, 2.0))
    assert half.backbone.channels == stages
    assert half.neck.smooth[0].out_channels == 16 and double.neck.smooth[0].out_channels == 64
    assert _parameters(half) < _parameters(full) < _parameters(double)
    assert double(torch.zeros(1, 3, 64, 64))["depth"].shape == (1, 1, 64, 64)


def test_decoder_only_width_keeps_the_backbone_and_other_families_are_refused_in_one_line():
    decoder_only = MultiTaskNet([DEPTH], backbone="test_vit", decoder_channels=32, width=0.5, scale_backbone=False)
    assert decoder_only.backbone.channels == MultiTaskNet([DEPTH], backbone="test_vit", decoder_channels=32).backbone.channels
    with pytest.raises(ModelConfigError, match=r"'test_vit' \(VisionTransformer\) has no stage-width argument .* scale_backbone: false"):
        MultiTaskNet([DEPTH], backbone="test_vit", width=0.5)
    with pytest.raises(ModelConfigError, match="width=0 must be > 0"):
        MultiTaskNet([DEPTH], backbone="test_resnet", width=0)
