"""Networks for dense multi-task prediction: torch + timm only, no Lightning."""

from mtlbench.models.backbone import Backbone, check_backbone_name
from mtlbench.models.base import MultiTaskModel
from mtlbench.models.errors import ModelConfigError
from mtlbench.models.heads import HeadSpec, build_head
from mtlbench.models.mtan import MTANSegNet
from mtlbench.models.multitask import MultiTaskNet
from mtlbench.models.neck import FeaturePyramidNeck
from mtlbench.models.segnet import SegNet

__all__ = [
    "Backbone",
    "FeaturePyramidNeck",
    "HeadSpec",
    "MTANSegNet",
    "ModelConfigError",
    "MultiTaskModel",
    "MultiTaskNet",
    "SegNet",
    "build_head",
    "check_backbone_name",
]
