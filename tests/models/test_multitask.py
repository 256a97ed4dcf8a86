from types import SimpleNamespace

import pytest
import timm
import torch

from mtlbench.models import Backbone, ModelConfigError, MultiTaskNet
from mtlbench.tasks import Normal, depth_task, normal_task, segmentation_task

TASKS = [segmentation_task(5), depth_task(), normal_task()]


@pytest.fixture(scope="module")
def net() -> MultiTaskNet:
    torch.manual_seed(0)
    return MultiTaskNet(TASKS, backbone="test_resnet", decoder_channels=16)


def test_outputs_have_input_size_and_task_channels(net):
    outputs = net(torch.randn(2, 3, 48, 64))
    assert outputs["segmentation"].shape == (2, 5, 48, 64)
    assert outputs["depth"].shape == (2, 1, 48, 64)
    assert torch.allclose(outputs["normal"].norm(dim=1), torch.ones(2, 48, 64), atol=1e-5)


def test_encode_decode_equals_forward(net):
    net.eval()
    x = torch.randn(2, 3, 32, 48)
    direct = net(x)
    features = net.encode(x)
    assert features.shape[-2:] == (8, 12)  # stride 4
    for name, value in net.decode(features).items():
        torch.testing.assert_close(value, direct[name])
    net.train()


def test_shared_and_task_parameters_partition_all_parameters(net):
    ids = [id(p) for p in net.shared_parameters()]
    for task in TASKS:
        ids += [id(p) for p in net.task_parameters(task.name)]
    assert len(ids) == len(set(ids)), "a parameter is both shared and task-specific"
    assert set(ids) == {id(p) for p in net.parameters()}


def test_task_gradient_touches_only_its_head_and_the_shared_part(net):
    net.zero_grad()
    net(torch.randn(2, 3, 32, 32))["depth"].sum().backward()
    assert all(p.grad is None for p in net.task_parameters("segmentation"))
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.shared_parameters())
    net.zero_grad()


def test_any_timm_features_only_backbone_works():
    for name in ("test_efficientnet", "test_convnext"):
        net = MultiTaskNet([depth_task()], backbone=name, decoder_channels=8)
        assert net(torch.randn(2, 3, 32, 32))["depth"].shape == (2, 1, 32, 32)


def test_unknown_backbone_lists_close_matches():
    with pytest.raises(ModelConfigError, match=r"unknown timm backbone 'resnet19'; close matches: .*resnet18") as info:
        MultiTaskNet(TASKS, backbone="resnet19")
    assert "\n" not in str(info.value)


def test_missing_weights_file_is_named(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(ModelConfigError, match=rf"pretrained weights file '{missing}' not found; .*true for timm") as info:
        Backbone("test_resnet", pretrained=str(missing))
    assert "\n" not in str(info.value)


def test_local_weights_file_is_loaded(tmp_path):
    torch.manual_seed(1)
    source = timm.create_model("test_resnet")
    weights = tmp_path / "test_resnet.pth"
    torch.save(source.state_dict(), weights)
    loaded = Backbone("test_resnet", pretrained=str(weights))
    reference = source.state_dict()
    state = loaded.body.state_dict()
    matched = [key for key in state if key in reference]
    assert len(matched) > 0.9 * len(state)
    assert all(torch.equal(state[key], reference[key]) for key in matched)
    fresh = Backbone("test_resnet")
    assert not all(torch.equal(fresh.body.state_dict()[key], reference[key]) for key in matched)


def test_a_task_that_does_not_fit_its_kind_is_named():
    edges = SimpleNamespace(name="edges", kind="edge", channels=1, ignore_value=0.0)
    with pytest.raises(
        ModelConfigError, match=r"task 'edges': unknown task kind 'edge'; built-in kinds: segmentation, depth, normal, or give a TaskKind"
    ):
        MultiTaskNet([depth_task(), edges], backbone="test_resnet")
    flat_normal = SimpleNamespace(name="normal", kind=Normal(), channels=1, ignore_value=0.0)
    with pytest.raises(ModelConfigError, match=r"task 'normal' of kind 'normal' must have 3 channels, got 1"):
        MultiTaskNet([flat_normal], backbone="test_resnet")
    with pytest.raises(ModelConfigError, match="no head for task 'edges'"):
        next(MultiTaskNet([depth_task()], backbone="test_resnet", decoder_channels=8).task_parameters("edges"))


def test_group_norm_makes_every_sample_independent_of_its_batch():
    torch.manual_seed(0)
    net = MultiTaskNet(TASKS, backbone="test_resnet", decoder_channels=16, norm="group")
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
    assert any(isinstance(m, torch.nn.GroupNorm) for m in net.backbone.modules())
    images = torch.randn(4, 3, 32, 32)
    whole, half = net(images)["depth"], net(images[:2])["depth"]
    torch.testing.assert_close(whole[:2], half)  # in training mode: no batch statistics


def test_sync_batch_norm_is_an_option_and_unknown_norms_are_named():
    net = MultiTaskNet(TASKS, backbone="test_resnet", decoder_channels=16, norm="sync_batch")
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in net.modules())
    assert not any(type(m) is torch.nn.BatchNorm2d for m in net.modules())
    with pytest.raises(ModelConfigError, match="unknown norm 'layer'"):
        MultiTaskNet(TASKS, backbone="test_resnet", norm="layer")


def test_a_failure_that_is_not_the_configuration_keeps_its_traceback(monkeypatch):
    """Only what a user can fix is one line; a device or library failure stays itself."""
    import timm

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(timm, "create_model", broken)
    with pytest.raises(RuntimeError, match="CUDA error") as info:
        Backbone("test_resnet")
    assert not isinstance(info.value, ModelConfigError)


def test_a_forward_failure_that_is_not_the_input_size_keeps_its_traceback(monkeypatch):
    backbone = Backbone("test_resnet")

    def broken(images):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(backbone.body, "forward", broken)
    with pytest.raises(RuntimeError, match="illegal memory access") as info:
        backbone(torch.randn(1, 3, 32, 32))
    assert not isinstance(info.value, ModelConfigError)


def test_the_model_interface_is_enforced():
    from mtlbench.models import MultiTaskModel

    class Incomplete(MultiTaskModel):
        def encode(self, images):
            return images

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()
