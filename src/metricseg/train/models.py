"""Network factory: MONAI's residual U-Net, 2D or 3D, narrow by default for CPU training."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["DEFAULT_CHANNELS", "build_model", "size_divisor"]

#: Feature maps per level; three levels keep a CPU epoch on a small task well under a second.
DEFAULT_CHANNELS: tuple[int, ...] = (16, 32, 64)


def build_model(
    spatial_dims: int,
    in_channels: int,
    num_classes: int,
    *,
    channels: Sequence[int] = DEFAULT_CHANNELS,
    num_res_units: int = 1,
    dropout: float = 0.0,
) -> torch.nn.Module:
    """A ``monai.networks.nets.UNet`` that maps ``(B, C_in, *spatial)`` to logits ``(B, C, *spatial)``.

    Every level but the last halves the resolution (stride 2), so inputs must be
    multiples of :func:`size_divisor` (inference pads to it).

    Example:
        >>> import torch
        >>> net = build_model(2, 1, 3, channels=(4, 8))
        >>> tuple(net(torch.zeros(1, 1, 16, 16)).shape)
        (1, 3, 16, 16)
    """
    from monai.networks.nets import UNet

    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    for name, value in (("in_channels", in_channels), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    channels = tuple(int(c) for c in channels)
    if len(channels) < 2 or min(channels) < 1:
        raise ValueError(f"channels must list >= 2 positive widths, got {channels!r}")
    return UNet(
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        out_channels=num_classes,
        channels=channels,
        strides=(2,) * (len(channels) - 1),
        num_res_units=num_res_units,
        dropout=dropout,
    )


def size_divisor(channels: Sequence[int] = DEFAULT_CHANNELS) -> int:
    """The factor every spatial size must be a multiple of: ``2 ** (levels - 1)``.

    Example:
        >>> size_divisor((16, 32, 64))
        4
    """
    return 2 ** (len(tuple(channels)) - 1)
