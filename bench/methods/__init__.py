"""Multi-task methods, one file per method: loss weightings and gradient aggregators.

Loss weightings map the per-task losses ``[T]`` to one scalar; gradient aggregators map the
per-task Jacobian ``[T, n]`` to one update ``[n]``. See :mod:`bench.methods.base`.
"""

from bench.methods.aligned_mtl import AlignedMTL
from bench.methods.base import GradientAggregator, LossWeighting, Space
from bench.methods.cagrad import CAGrad
from bench.methods.conflict_free import ConFIG
from bench.methods.db_mtl import DualBalancing
from bench.methods.dualproj import DualProj
from bench.methods.dwa import DynamicWeightAverage
from bench.methods.ew import EqualWeighting
from bench.methods.excess_mtl import ExcessMTL
from bench.methods.fairgrad import FairGrad
from bench.methods.famo import FastAdaptiveMultitask
from bench.methods.fixed_weights import FixedWeights
from bench.methods.gls import GeometricLossStrategy
from bench.methods.graddrop import GradDrop
from bench.methods.gradnorm import GradNorm
from bench.methods.gradvac import GradVac
from bench.methods.imtl_g import IMTLG
from bench.methods.imtl_l import ImpartialLossBalancing
from bench.methods.mgda import MGDA
from bench.methods.nash_mtl import NashMTL
from bench.methods.pcd import PCD
from bench.methods.pcgrad import PCGrad
from bench.methods.rgw import RandomGradientWeighting
from bench.methods.rlw import RandomLossWeighting
from bench.methods.si import ScaleInvariant
from bench.methods.upgrad import UPGrad
from bench.methods.uw import UncertaintyWeighting

LOSS_WEIGHTINGS = (
    EqualWeighting,
    FixedWeights,
    UncertaintyWeighting,
    DynamicWeightAverage,
    RandomLossWeighting,
    GeometricLossStrategy,
    ScaleInvariant,
    ImpartialLossBalancing,
    FastAdaptiveMultitask,
    GradNorm,
)
GRADIENT_AGGREGATORS = (
    MGDA,
    PCGrad,
    CAGrad,
    NashMTL,
    AlignedMTL,
    IMTLG,
    GradDrop,
    GradVac,
    UPGrad,
    DualProj,
    FairGrad,
    ConFIG,
    ExcessMTL,
    DualBalancing,
    RandomGradientWeighting,
    PCD,
)

__all__ = [
    "GRADIENT_AGGREGATORS",
    "IMTLG",
    "LOSS_WEIGHTINGS",
    "MGDA",
    "PCD",
    "AlignedMTL",
    "CAGrad",
    "ConFIG",
    "DualBalancing",
    "DualProj",
    "DynamicWeightAverage",
    "EqualWeighting",
    "ExcessMTL",
    "FairGrad",
    "FastAdaptiveMultitask",
    "FixedWeights",
    "GeometricLossStrategy",
    "GradDrop",
    "GradNorm",
    "GradVac",
    "GradientAggregator",
    "ImpartialLossBalancing",
    "LossWeighting",
    "NashMTL",
    "PCGrad",
    "RandomGradientWeighting",
    "RandomLossWeighting",
    "ScaleInvariant",
    "Space",
    "UPGrad",
    "UncertaintyWeighting",
]
