"""Multi-task methods, one file per method: loss weightings and gradient aggregators.

Loss weightings map the per-task losses ``[T]`` to one scalar; gradient aggregators map the
per-task Jacobian ``[T, n]`` to one update ``[n]``. See :mod:`mtlbench.bench.run.methods.base`.
"""

from mtlbench.bench.run.methods.aligned_mtl import AlignedMTL
from mtlbench.bench.run.methods.base import GradientAggregator, LossWeighting, Space
from mtlbench.bench.run.methods.cagrad import CAGrad
from mtlbench.bench.run.methods.conflict_free import ConFIG
from mtlbench.bench.run.methods.db_mtl import DualBalancing
from mtlbench.bench.run.methods.dualproj import DualProj
from mtlbench.bench.run.methods.dwa import DynamicWeightAverage
from mtlbench.bench.run.methods.ew import EqualWeighting
from mtlbench.bench.run.methods.excess_mtl import ExcessMTL
from mtlbench.bench.run.methods.fairgrad import FairGrad
from mtlbench.bench.run.methods.famo import FastAdaptiveMultitask
from mtlbench.bench.run.methods.fixed_weights import FixedWeights
from mtlbench.bench.run.methods.gls import GeometricLossStrategy
from mtlbench.bench.run.methods.graddrop import GradDrop
from mtlbench.bench.run.methods.gradnorm import GradNorm
from mtlbench.bench.run.methods.gradvac import GradVac
from mtlbench.bench.run.methods.imtl_g import IMTLG
from mtlbench.bench.run.methods.imtl_l import ImpartialLossBalancing
from mtlbench.bench.run.methods.mgda import MGDA
from mtlbench.bench.run.methods.nash_mtl import NashMTL
from mtlbench.bench.run.methods.pcd import PCD
from mtlbench.bench.run.methods.pcgrad import PCGrad
from mtlbench.bench.run.methods.rgw import RandomGradientWeighting
from mtlbench.bench.run.methods.rlw import RandomLossWeighting
from mtlbench.bench.run.methods.si import ScaleInvariant
from mtlbench.bench.run.methods.upgrad import UPGrad
from mtlbench.bench.run.methods.uw import UncertaintyWeighting

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
