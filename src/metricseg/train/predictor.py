"""Inference: a trained network as a :class:`Predictor` of label maps.

Three ways to cover an image, chosen once when the predictor is built:

* **whole image** — padded (replicating the border) to a multiple of the network's
  size divisor, run at once, cropped back;
* **sliding window** (3D networks with a training patch) — overlapping windows of the
  patch size with Gaussian blending (``monai.inferers.sliding_window_inference``), so
  a volume larger than the patch fits in memory;
* **slice by slice** (a 2D network on a 3D volume) — every axial slice (axis 0 of
  ``(z, y, x)``) is predicted as a 2D image, in batches, and the slices are stacked
  back into the volume, so a 2D network is scored per volume.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["Predictor", "autocast_dtype", "predict_logits"]


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device`` (None: full precision; CPU is always None).

    Example:
        >>> autocast_dtype("auto", torch.device("cpu")) is None
        True
    """
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


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
    autocast: torch.dtype | None = None,
) -> torch.Tensor:
    """Logits ``(B, C, *spatial)`` float32 for images ``(B, C_in, *spatial)``.

    With ``roi_size`` the image is covered by overlapping windows of that size
    (Gaussian blending); without it the whole image runs at once, padded to a
    multiple of ``divisor`` and cropped back.

    Example:
        >>> net = torch.nn.Conv3d(1, 2, 1)
        >>> tuple(predict_logits(net, torch.zeros(1, 1, 9, 10, 11), roi_size=(4, 4, 4)).shape)
        (1, 2, 9, 10, 11)
    """
    was_training = model.training
    model.eval()
    try:
        with torch.autocast(
            device_type=image.device.type,
            dtype=autocast or torch.float32,
            enabled=autocast is not None,
        ):
            padded, spatial = _pad_to_multiple(image, divisor)
            if roi_size is not None:
                from monai.inferers import sliding_window_inference

                roi = tuple(min(int(r), int(s)) for r, s in zip(roi_size, image.shape[2:]))
                roi = tuple(r - r % divisor if r >= divisor else divisor for r in roi)
                out = sliding_window_inference(
                    padded, roi, sw_batch_size, model, overlap=overlap, mode="gaussian"
                )
            else:
                out = model(padded)
        out = torch.as_tensor(out).float()
        return out[(slice(None), slice(None), *(slice(0, s) for s in spatial))]
    finally:
        model.train(was_training)


class Predictor:
    """Label maps from a trained network: ``predictor(image (C_in, *spatial)) -> (*spatial)``.

    Args:
        model: the network; it maps ``(B, C_in, *net_spatial)`` to logits.
        network_dims: spatial dims of the network (2 on a 3D image: slice by slice).
        divisor: every network input size must be a multiple of it (padded).
        roi_size: sliding-window size for a 3D network (None: whole image).
        device: where the network runs.
        autocast: autocast dtype on CUDA (None: full precision).
        slice_batch: slices per forward pass in slice-by-slice mode.

    Example:
        >>> net = torch.nn.Conv2d(1, 2, 1)
        >>> p = Predictor(net, network_dims=2)
        >>> p(np.zeros((1, 5, 6), np.float32)).shape, p(np.zeros((1, 3, 5, 6), np.float32)).shape
        ((5, 6), (3, 5, 6))
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        network_dims: int,
        divisor: int = 1,
        roi_size: Sequence[int] | None = None,
        device: torch.device | str = "cpu",
        autocast: torch.dtype | None = None,
        slice_batch: int = 16,
    ) -> None:
        self.model = model
        self.network_dims = network_dims
        self.divisor = divisor
        self.roi_size = tuple(roi_size) if roi_size is not None else None
        self.device = torch.device(device)
        self.autocast = autocast
        self.slice_batch = slice_batch

    def logits(self, image: np.ndarray) -> torch.Tensor:
        """Logits ``(C, *spatial)`` (float32, on the predictor's device) for ``(C_in, *spatial)``."""
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).to(self.device)
        spatial_dims = x.ndim - 1
        if spatial_dims == self.network_dims:
            return self._run(x[None])[0]
        if spatial_dims == 3 and self.network_dims == 2:
            slices = x.movedim(1, 0)  # (z, C_in, y, x): the axial slices as a batch
            parts = [
                self._run(slices[i : i + self.slice_batch])
                for i in range(0, slices.shape[0], self.slice_batch)
            ]
            return torch.cat(parts).movedim(0, 1)  # (C, z, y, x)
        raise ValueError(
            f"image must be (C_in, *spatial) with {self.network_dims} spatial dims (or 3 for a "
            f"2D network, slice by slice), got shape {tuple(image.shape)}"
        )

    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        return predict_logits(
            self.model,
            batch,
            divisor=self.divisor,
            roi_size=self.roi_size,
            autocast=self.autocast,
        )

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """The label map ``(*spatial)`` int64 (argmax over classes) of one image ``(C_in, *spatial)``."""
        return self.logits(image).argmax(0).cpu().numpy().astype(np.int64)
