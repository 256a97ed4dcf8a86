"""Width multipliers for scaling studies: the decoder's channels, and the stage widths of the timm
families whose constructors take them (ResNet's ``channels``, ConvNeXt's ``dims``).

Widths are rounded to multiples of 8 (at least 8), as width-multiplied networks usually are, so
group norms and vectorised kernels keep working.
"""

from __future__ import annotations

from mtlbench.models.errors import ModelConfigError

WIDTH_ARGUMENT = {"ResNet": "channels", "ConvNeXt": "dims"}  # timm class -> its stage-width argument


def scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded to a multiple of 8 (at least 8); unchanged at width 1.

    Example:
        >>> scaled(64, 0.5), scaled(48, 0.25), scaled(64, 1.0), scaled(6, 1.0)
        (32, 16, 64, 6)
    """
    if width <= 0:
        raise ModelConfigError(f"width={width} must be > 0 (1 = the configured width)")
    if width == 1:
        return channels
    return max(8, round(channels * width / 8) * 8)


def backbone_width_args(name: str, width: float, model_args: dict) -> dict:
    """The timm constructor arguments that make backbone ``name`` ``width`` times as wide.

    The stage widths are read from the model built on the meta device (no memory, no weights),
    so the multiplier applies to whatever the model's own entry point configures."""
    if width == 1:
        return {}
    import timm  # (imported when used: `mtlbench fit --help` does without it)

    model = timm.create_model(name, pretrained=False, device="meta", **model_args)
    family = type(model).__name__
    argument = WIDTH_ARGUMENT.get(family)
    if argument is None:
        known = ", ".join(f"{cls} ({arg})" for cls, arg in WIDTH_ARGUMENT.items())
        raise ModelConfigError(
            f"timm backbone '{name}' ({family}) has no stage-width argument mtlbench can scale (it knows {known}); "
            "pass scale_backbone: false to scale only the decoder"
        )
    stages = [info["num_chs"] for info in model.feature_info]
    if family == "ResNet":  # feature_info[0] is the stem; a stage's output is its width times the block's expansion
        stages = [info // type(getattr(model, f"layer{i}")[0]).expansion for i, info in enumerate(stages[1:], start=1)]
    return {argument: tuple(scaled(stage, width) for stage in stages)}
