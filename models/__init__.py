"""Networks for dense multi-task prediction: torch + timm only, no Lightning."""

from models.backbone import Backbone, check_backbone_name
from models.base import MultiTaskModel
from models.errors import ModelConfigError
from models.heads import HEAD_FOR_KIND, HeadSpec, build_head
from models.mtan import MTANSegNet
from models.multitask import MultiTaskNet
from models.neck import FeaturePyramidNeck
from models.segnet import SegNet

__all__ = [
    "HEAD_FOR_KIND",
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
