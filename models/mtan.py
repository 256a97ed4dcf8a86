"""MTAN: the multi-task attention network over a SegNet (Liu, Johns & Davison, "End-to-End
Multi-Task Learning with Attention", CVPR 2019), the model of the NYUv2 and Cityscapes tables
of Nash-MTL, CAGrad and FAMO.

A SegNet (five encoder stages of 3x3 conv-BN-ReLU layers with max pooling, mirrored by a
decoder that unpools with the pooling indices) is shared by all tasks. Each task has soft
attention masks (1x1 conv-BN-ReLU, 1x1 conv-BN-sigmoid) at every stage: in the encoder a mask
applied to the stage's last features, computed from its first features and the task's previous
attended features; in the decoder the same from the unpooled features. The 3x3 layers that
carry each task's attended features from one stage to the next are shared by the tasks, as in
the paper's code.

As Nash-MTL's code does, the shared representation is each task's attended features at full
resolution (``encode`` stacks them along the channels); the task-specific parts are the
prediction heads, and the attention masks count as shared parameters (a task's rows of the
Jacobian are zero on the other tasks' masks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mtlbench.models.heads import HeadSpec
from mtlbench.models.norms import Norm
from mtlbench.models.segnet import SEGNET_WIDTHS, SegNetBase
from mtlbench.tasks.head import conv_bn_relu


def attention(in_channels: int, mid: int, out: int) -> nn.Sequential:
    """A soft attention mask: 1x1 conv-BN-ReLU, 1x1 conv-BN, sigmoid."""
    return nn.Sequential(
        nn.Conv2d(in_channels, mid, 1),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid, out, 1),
        nn.BatchNorm2d(out),
        nn.Sigmoid(),
    )


class MTANSegNet(SegNetBase):
    """SegNet with task attention (MTAN), for inputs whose sides are multiples of 32.

    Args:
        tasks: the tasks to predict (linked from the datamodule by the CLI).
        widths: channels of the five stages (the paper: 64, 128, 256, 512, 512; smaller
            for tests).
        norm: as :class:`mtlbench.models.MultiTaskNet`.

    Example:
        >>> from mtlbench.tasks import depth_task
        >>> depth = depth_task()
        >>> net = MTANSegNet([depth], widths=(4, 4, 4, 4, 4))
        >>> net(torch.zeros(2, 3, 64, 64))["depth"].shape
        torch.Size([2, 1, 64, 64])
    """

    def __init__(self, tasks: Sequence[HeadSpec], widths: Sequence[int] = SEGNET_WIDTHS, norm: Norm = "batch") -> None:
        super().__init__(tasks, widths, norm)
        f, count = self.widths, len(self.task_names)
        self.encoder_attention = nn.ModuleList(
            nn.ModuleList([attention(f[0], f[0], f[0]), *(attention(2 * f[i], f[i], f[i]) for i in range(1, 5))]) for _ in range(count)
        )
        self.decoder_attention = nn.ModuleList(
            nn.ModuleList([attention(2 * f[0], f[0], f[0]), *(attention(f[i + 1] + f[i], f[i], f[i]) for i in range(4))])
            for _ in range(count)
        )
        self.encoder_attention_convs = nn.ModuleList([*(conv_bn_relu(f[i], f[i + 1]) for i in range(4)), conv_bn_relu(f[4], f[4])])
        self.decoder_attention_convs = nn.ModuleList([conv_bn_relu(f[0], f[0]), *(conv_bn_relu(f[i + 1], f[i]) for i in range(4))])
        self.add_heads(tasks, norm)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Each task's attended full-resolution features, stacked along the channels (B, T*w, H, W)."""
        first, last, unpooled, decoded = self.segnet_pass(images)
        attended = []
        for task in range(len(self.task_names)):
            carried = None
            for stage in range(5):  # the task's encoder attention
                source = first[stage] if carried is None else torch.cat((first[stage], carried), dim=1)
                masked = self.encoder_attention[task][stage](source) * last[stage]
                carried = F.max_pool2d(self.encoder_attention_convs[stage](masked), 2, stride=2)
            for step in range(5):  # the task's decoder attention
                stage = 4 - step
                carried = F.interpolate(carried, size=unpooled[step].shape[-2:], mode="bilinear", align_corners=True)
                carried = self.decoder_attention_convs[stage](carried)
                mask = self.decoder_attention[task][stage](torch.cat((unpooled[step], carried), dim=1))
                carried = mask * decoded[step]
            attended.append(carried)
        return torch.cat(attended, dim=1)

    def decode(self, features: torch.Tensor | Mapping[str, torch.Tensor], size: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
        size = self.output_size(size)
        outputs = {}
        for k, (name, head) in enumerate(self.heads.items()):
            own = features[name] if isinstance(features, Mapping) else features
            outputs[name] = head(own[:, k * self.width : (k + 1) * self.width], size)
        return outputs
