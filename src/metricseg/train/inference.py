"""Inference: whole-image prediction for 2D, sliding windows for 3D volumes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["predict_labels", "predict_logits"]


def _pad_to_multiple(x: torch.Tensor, divisor: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    spatial = tuple(x.shape[2:])
    pad: list[int] = []
    for size in reversed(spatial):  # F.pad lists the last axis first
        pad += [0, (-size) % divisor]
    return (F.pad(x, pad, mode="replicate") if any(pad) else x), spatial


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module,
    image: torch.Tensor,
    *,
    divisor: int = 1,
    roi_size: Sequence[int] | None = None,
    sw_batch_size: int = 4,
    overlap: float = 0.25,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Logits ``(B, C, *spatial)`` for images ``(B, C_in, *spatial)``.

    With ``roi_size`` the volume is covered by overlapping windows of that size
    (``monai.inferers.sliding_window_inference``, Gaussian blending), so a 3D
    volume larger than the training patch fits in memory. Without it the whole
    image is run at once, padded (replicating the border) to a multiple of
    ``divisor`` and cropped back.

    Example:
        >>> import torch
        >>> net = torch.nn.Conv3d(1, 2, 1)
        >>> tuple(predict_logits(net, torch.zeros(1, 1, 9, 10, 11), roi_size=(4, 4, 4)).shape)
        (1, 2, 9, 10, 11)
    """
    was_training = model.training
    model.eval()
    try:
        with torch.autocast(
            device_type=image.device.type,
            dtype=autocast_dtype or torch.float32,
            enabled=autocast_dtype is not None,
        ):
            if roi_size is not None:
                from monai.inferers import sliding_window_inference

                roi = tuple(min(int(r), int(s)) for r, s in zip(roi_size, image.shape[2:]))
                padded, spatial = _pad_to_multiple(image, divisor)
                roi = tuple(r - r % divisor if r >= divisor else divisor for r in roi)
                out = sliding_window_inference(
                    padded, roi, sw_batch_size, model, overlap=overlap, mode="gaussian"
                )
            else:
                padded, spatial = _pad_to_multiple(image, divisor)
                out = model(padded)
        out = out.float()
        crop = (slice(None), slice(None), *(slice(0, s) for s in spatial))
        return out[crop]
    finally:
        model.train(was_training)


def predict_labels(
    model: torch.nn.Module,
    image: np.ndarray,
    *,
    device: torch.device | str = "cpu",
    divisor: int = 1,
    roi_size: Sequence[int] | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> np.ndarray:
    """Label map ``(*spatial)`` int64 for one image ``(C_in, *spatial)`` (argmax over classes).

    Example:
        >>> import numpy as np, torch
        >>> net = torch.nn.Conv2d(1, 2, 1)
        >>> predict_labels(net, np.zeros((1, 5, 6), np.float32)).shape
        (5, 6)
    """
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None].to(device)
    logits = predict_logits(
        model, x, divisor=divisor, roi_size=roi_size, autocast_dtype=autocast_dtype
    )
    return logits.argmax(1)[0].cpu().numpy().astype(np.int64)
