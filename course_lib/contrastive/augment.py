"""Batched, seeded image augmentations for SimCLR on 8×8 digits: shift, scale jitter, noise.

Paper: Chen et al., *A Simple Framework for Contrastive Learning of Visual Representations*
(SimCLR, ICML 2020), §3 and Appendix A: two random views of each image are drawn by a
composition of augmentations; their Figure 5 shows that the *composition* (crop + colour) is
what makes the task hard enough to learn from. The reference implementation is torchvision's
``RandomResizedCrop`` + ``ColorJitter`` + ``GaussianBlur``, one image at a time.

The math. Each image ``x`` (``H × W``) is resampled through a random affine map of the output
grid (the coordinates ``u ∈ [-1, 1]²`` of :func:`torch.nn.functional.affine_grid`)::

    x'(u) = x(s·u + t),   s ~ U[1 - scale_jitter, 1 + scale_jitter],
                          t = 2·(Δx, Δy)/(W, H),  Δ ~ U[-max_shift, max_shift] pixels
    view  = x' + noise_std · ε,   ε ~ N(0, I)

with bilinear interpolation and zeros outside the image. ``s > 1`` zooms out, ``s < 1`` zooms in
(a crop resized back to ``H × W``, as ``RandomResizedCrop``). For ``s = 1`` and a whole-pixel
``Δ`` the resampling is exact: it equals padding by ``|Δ|`` and cropping — torchvision's
``RandomCrop(size, padding=k)`` — which ``tests/test_contrastive_simclr.py`` checks.

Differences from the reference: the whole batch is augmented at once (one ``grid_sample``), every
draw comes from one ``torch.Generator`` (the same seed gives the same views on every machine);
no colour jitter, flips or blur — the digits are grey, and a flipped digit is a different symbol.
Limitations: the noise is added after the resampling and is not clipped, so pixels may leave
``[0, 1]``.

Notebook: ``06_self_supervised`` §6 (SimCLR on digits). Tests: ``tests/test_contrastive_simclr.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib import _checks
from course_lib._export import export


def _resample(images: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``x'(u) = x(s·u + t)`` for images (Tensor[N, C, H, W]), scale (Tensor[N]), shift (Tensor[N, 2], pixels)."""
    n, _, h, w = images.shape
    theta = images.new_zeros(n, 2, 3)  # (N, 2, 3): one affine map of the output grid per image
    theta[:, 0, 0] = theta[:, 1, 1] = scale.to(images.device)
    # A shift of Δ pixels is 2Δ/W in affine_grid's [-1, 1] coordinates (align_corners=False).
    # Sampling at u + t moves the content by -t: the sign only flips the (symmetric) distribution.
    theta[:, 0, 2] = 2 * shift[:, 0].to(images.device) / w
    theta[:, 1, 2] = 2 * shift[:, 1].to(images.device) / h
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (N, H, W, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@export("contrastive.augment_images")
def augment_images(
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    max_shift: float = 1.0,
    scale_jitter: float = 0.1,
    noise_std: float = 0.1,
) -> torch.Tensor:
    """One random view of every image: shift, scale jitter and Gaussian noise, batched.

    Args:
        images (Tensor[N, C, H, W]): floating point, any device.
        generator: a CPU ``torch.Generator`` for every draw (``None``: torch's global one). The
            draws are made on the CPU and moved, so a seed gives the same views on any device.
        max_shift: largest shift, in pixels, along each axis (uniform in ``[-max_shift, max_shift]``).
        scale_jitter: the zoom factor ``s`` is uniform in ``[1 - scale_jitter, 1 + scale_jitter]``;
            at most 0.9, so the zoom stays positive.
        noise_std: standard deviation of the added Gaussian noise, in pixel units.

    Returns:
        Tensor[N, C, H, W] of the same dtype and device: the augmented views (``N = 0`` allowed).

    Raises:
        TypeError: ``images`` is not a floating-point tensor, a parameter is not a number.
        ValueError: ``images`` is not 4-D, a negative parameter, ``scale_jitter > 0.9``.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> augment_images(torch.rand(5, 1, 8, 8), gen).shape
        torch.Size([5, 1, 8, 8])
    """
    _checks.tensor("images", images, ndim=4, floating=True)
    max_shift = _checks.real("max_shift", max_shift, minimum=0.0)
    scale_jitter = _checks.real("scale_jitter", scale_jitter, minimum=0.0, maximum=0.9)  # s stays ≥ 0.1
    noise_std = _checks.real("noise_std", noise_std, minimum=0.0)
    n = images.shape[0]
    # Every draw on the CPU, in one fixed order, so the views depend on the seed only.
    scale = 1.0 + scale_jitter * (2 * torch.rand(n, generator=generator) - 1)  # (N,)
    shift = max_shift * (2 * torch.rand(n, 2, generator=generator) - 1)  # (N, 2): (Δx, Δy) in pixels
    noise = torch.randn(images.shape, generator=generator)  # (N, C, H, W)
    if n == 0:  # affine_grid refuses an empty batch; there is nothing to resample
        return images + noise_std * noise.to(device=images.device, dtype=images.dtype)
    views = _resample(images, scale.to(images.dtype), shift.to(images.dtype))  # (N, C, H, W)
    return views + noise_std * noise.to(device=images.device, dtype=images.dtype)
