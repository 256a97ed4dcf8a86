"""Transformer backbones (plain ViT, Swin), timm's default weights, and the MTAN model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch

from mtlbench.bench.run.methods import MGDA, GradNorm, UPGrad
from mtlbench.bench.run.module import MultiTaskModule
from mtlbench.models import Backbone, ModelConfigError, MTANSegNet, MultiTaskNet
from mtlbench.tasks import depth_task, normal_task, segmentation_task

TASKS = [segmentation_task(5), depth_task(), normal_task()]
TINY_SWIN = {"embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 1, 1]}


@pytest.mark.parametrize("size", [(96, 128), (64, 64)])
def test_a_plain_vit_gives_a_pyramid_at_any_input_size(size):
    backbone = Backbone("test_vit")
    assert backbone.reductions == [4, 8, 16, 32] and backbone.pyramid is not None
    features = backbone(torch.zeros(2, 3, *size))
    for feature, channels, stride in zip(features, backbone.channels, backbone.reductions, strict=True):
        assert feature.shape == (2, channels, size[0] // stride, size[1] // stride)


def test_a_plain_vit_takes_evenly_spaced_blocks_as_dpt_does():
    backbone = Backbone("vit_tiny_patch16_224")
    assert list(backbone.body.feature_info.module_name()) == ["blocks.2", "blocks.5", "blocks.8", "blocks.11"]
    assert backbone.channels == [24, 48, 96, 192]  # 1/8, 1/4, 1/2 and 1 of the token width, as DPT's 96-768 for ViT-B


def test_swin_features_come_channels_first():
    backbone = Backbone("swin_tiny_patch4_window7_224", model_args=TINY_SWIN)
    assert backbone.channels_last
    features = backbone(torch.zeros(2, 3, 96, 128))
    assert [tuple(f.shape) for f in features] == [(2, 16, 24, 32), (2, 32, 12, 16), (2, 64, 6, 8), (2, 128, 3, 4)]


def test_a_backbone_that_cannot_give_dense_features_is_one_line():
    backbone = Backbone("mixer_s16_224")  # one input size only
    with pytest.raises(ModelConfigError, match=r"^timm backbone 'mixer_s16_224' cannot give dense features of 96x128 images: Input height"):
        backbone(torch.zeros(1, 3, 96, 128))


def test_a_local_weights_file_loads_into_a_transformer(tmp_path):
    torch.manual_seed(3)
    source = timm.create_model("test_vit")
    torch.save(source.state_dict(), tmp_path / "test_vit.pth")
    loaded = Backbone("test_vit", pretrained=str(tmp_path / "test_vit.pth")).body.state_dict()
    reference = {f"model.{key}": value for key, value in source.state_dict().items()}
    matched = [key for key in loaded if key in reference]
    assert len(matched) > 0.9 * len(loaded)
    assert all(torch.equal(loaded[key], reference[key]) for key in matched)


def test_default_weights_offline_without_a_cached_copy_are_one_line(tmp_path):
    """timm's own hub loading runs (nothing bypassed); offline and with an empty cache it fails,
    and the failure is one line naming the weights, the cache and the local-file alternative."""
    code = "from mtlbench.models import Backbone\nBackbone('test_resnet', pretrained=True)"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "torch")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=Path(__file__).parents[2], timeout=120)
    last = done.stderr.strip().splitlines()[-1]
    cache = tmp_path / "hf" / "hub"
    assert last.startswith("mtlbench.models.errors.ModelConfigError: the default weights of 'test_resnet' are not in timm's cache")
    assert f"{cache} (Hugging Face hub: timm/test_resnet.r160_in1k)" in last and "pretrained: PATH of a local file" in last


def test_mtan_has_the_papers_architecture_and_parameter_count():
    net = MTANSegNet([segmentation_task(13), depth_task(), normal_task()])
    total = sum(p.numel() for p in net.parameters())
    assert total == 44_219_153  # README: 44.23 M with the paper code's conv biases before BatchNorm
    shared = {id(p) for p in net.shared_parameters()}
    heads = [p for name in net.task_names for p in net.task_parameters(name)]
    assert len(shared) + len(heads) == len(list(net.parameters())) and not shared & {id(p) for p in heads}


def test_mtan_gives_each_task_its_attended_features():
    torch.manual_seed(0)
    net = MTANSegNet(TASKS, widths=(4, 4, 8, 8, 8))
    features = net.encode(torch.randn(2, 3, 64, 96))
    assert features.shape == (2, 3 * 4, 64, 96)
    outputs = net.decode(features)
    assert {name: tuple(out.shape) for name, out in outputs.items()} == {
        "segmentation": (2, 5, 64, 96),
        "depth": (2, 1, 64, 96),
        "normal": (2, 3, 64, 96),
    }
    with pytest.raises(ModelConfigError, match="multiples of 32"):
        net(torch.zeros(1, 3, 48, 64))


@pytest.mark.parametrize("method", [UPGrad(), MGDA(space="features"), GradNorm()], ids=["upgrad", "mgda-features", "gradnorm"])
def test_gradient_methods_train_mtan_and_the_transformers(method):
    """The Jacobian producer needs only encode/decode and the parameter split: every model takes every method."""
    torch.manual_seed(0)
    images = torch.randn(2, 3, 64, 64)
    targets = {"segmentation": torch.randint(0, 5, (2, 64, 64)), "depth": torch.rand(2, 1, 64, 64) + 0.1}
    targets["normal"] = torch.nn.functional.normalize(torch.randn(2, 3, 64, 64), dim=1)
    factories = [
        lambda tasks: MTANSegNet(tasks, widths=(4, 4, 8, 8, 8)),
        lambda tasks: MultiTaskNet(tasks, backbone="test_vit", decoder_channels=8),
        lambda tasks: MultiTaskNet(tasks, backbone="swin_tiny_patch4_window7_224", backbone_args=TINY_SWIN, decoder_channels=8),
    ]
    for factory in factories:
        module = MultiTaskModule(TASKS, net=factory, method=type(method)(**({"space": method.space} if hasattr(method, "space") else {})))
        optimizer = torch.optim.SGD(module.parameters(), lr=0.01)
        before = [p.detach().clone() for p in module.net.shared_parameters()]
        losses, _ = module.optimization_step(images, targets, optimizer, step=0)
        assert torch.isfinite(losses).all()
        assert any(not torch.equal(b, p) for b, p in zip(before, module.net.shared_parameters(), strict=True))


def test_default_weights_come_from_timms_cache_through_timms_loading(tmp_path):
    """A copy in the Hugging Face cache, where timm's hub loading keeps what it downloads, is
    what ``pretrained: true`` loads (offline, so nothing is fetched)."""
    code = """
import sys, torch, timm
from pathlib import Path
from safetensors.torch import save_file
from mtlbench.models import Backbone
repo = Path(sys.argv[1]) / "hub" / "models--timm--test_resnet.r160_in1k"
(repo / "refs").mkdir(parents=True)
(repo / "refs" / "main").write_text("0" * 40)
(repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
torch.manual_seed(5)
source = timm.create_model("test_resnet")
save_file(source.state_dict(), str(repo / "snapshots" / ("0" * 40) / "model.safetensors"))
loaded, reference = Backbone("test_resnet", pretrained=True).body.state_dict(), source.state_dict()
matched = [key for key in loaded if key in reference]
print(len(matched), len(loaded), all(torch.equal(loaded[key], reference[key]) for key in matched))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    command = [sys.executable, "-c", code, str(tmp_path / "hf")]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=Path(__file__).parents[2], timeout=120)
    count, total, equal = done.stdout.split()
    assert count == total and int(total) > 50 and equal == "True", done.stderr[-2000:]


SEGNET_PARAMETERS = 25_048_209  # widths 64..512, NYUv2's three heads: MTAN's 44.2 M less its attention


def test_segnet_shares_one_encoder_decoder_and_mtan_builds_on_the_same():
    """Hard parameter sharing: every head reads the same full-resolution features; MTAN is that
    SegNet plus attention (its shared parameters include all of SegNet's)."""
    from mtlbench.models import SegNet

    torch.manual_seed(0)
    net = SegNet(TASKS, widths=(4, 4, 8, 8, 8))
    features = net.encode(torch.randn(2, 3, 64, 96))
    assert features.shape == (2, 4, 64, 96)
    assert {name: tuple(out.shape) for name, out in net.decode(features).items()} == {
        "segmentation": (2, 5, 64, 96),
        "depth": (2, 1, 64, 96),
        "normal": (2, 3, 64, 96),
    }
    heads = {id(p) for name in net.task_names for p in net.task_parameters(name)}
    shared = list(net.shared_parameters())
    assert len(shared) + len(heads) == len(list(net.parameters())) and not heads & {id(p) for p in shared}
    mtan = MTANSegNet(TASKS, widths=(4, 4, 8, 8, 8))
    segnet_names = {name for name, _ in net.named_parameters() if not name.startswith("heads.")}
    assert segnet_names < {name for name, _ in mtan.named_parameters()}
    full = SegNet([segmentation_task(13), depth_task(), normal_task()])
    assert sum(p.numel() for p in full.parameters()) == SEGNET_PARAMETERS
    with pytest.raises(ModelConfigError, match="SegNet pools five times: image sides must be multiples of 32"):
        net(torch.zeros(1, 3, 48, 64))
