"""Deformable convolution (DCNv1 and the modulated DCNv2) in plain PyTorch: gather, im2col, matmul.

A convolution reads a fixed grid around each output position. A *deformable* convolution
(Dai et al., 2017, https://arxiv.org/abs/1703.06211) adds a learned 2-D offset ``Δp_k`` to each
of the K = kh·kw kernel taps, per output position, and DCNv2 (Zhu et al., 2019,
https://arxiv.org/abs/1811.11168) also scales each tap by a learned *modulation* ``Δm_k`` (in the
paper a sigmoid, so in [0, 1]; :func:`deform_conv2d` takes any real mask, as torchvision does):

    out[b, o, y, x] = bias[o] + Σ_c Σ_k  w[o, c, k] · Δm_k · in[b, c](p_k)
    p_k = (y·stride_h - pad_h + i·dil_h + Δy_k,  x·stride_w - pad_w + j·dil_w + Δx_k),  k = i·kw + j

where ``in[b, c](p)`` is :func:`~course_lib.deform.sampling.bilinear_sample` (zero outside). With
all offsets 0 and all masks 1 this is ``F.conv2d``.

Layout (torchvision's, ``torchvision.ops.deform_conv2d``):

* ``offset (Tensor[B, 2·G_off·kh·kw, H_out, W_out])``: channel ``2·(g·K + k)`` is Δy and
  ``2·(g·K + k) + 1`` is Δx of tap k for offset group g — (dy, dx) pairs interleaved per tap.
* ``mask (Tensor[B, G_off·kh·kw, H_out, W_out])``: channel ``g·K + k``.
* Input channel c uses offset group ``c // (C_in / G_off)``; weight groups as in ``F.conv2d``.

The implementation: (1) sample the input at every ``p_k`` → columns ``Tensor[B, C_in, K, L]``
(``L = H_out·W_out``), (2) multiply by the mask, (3) one batched matmul with the weights viewed
as ``Tensor[groups, C_out/groups, C_in/groups·K]``. Autograd derives all five gradients.

Differences from torchvision: no hand-written backward and no ``n_parallel_imgs`` chunking, so
the columns of the whole batch are held in memory (``B·C_in·K·L`` values, ×4 corners for
backward). :class:`DeformConv2d` predicts its own offsets and masks with a zero-initialised conv
(as in DCNv2), where torchvision's module takes them as arguments. **The mask differs from the
paper on purpose**: the paper's ``Δm = sigmoid(·)`` lies in [0, 1] and starts at 0.5, so a fresh
DCNv2 layer computes *half* the plain convolution; here ``Δm = 2·sigmoid(·)`` lies in (0, 2) and
starts at 1, so a fresh layer is *exactly* the plain convolution and can replace one in a trained
network without changing it (``tests/test_deform_edges.py`` pins both ranges). Pass
``mask_scale=1.0`` for the paper's mask. Limitations: slower than torchvision's kernels; 2-D only.

Notebook: ``08_deformable_conv`` §3. Tests: ``tests/test_deform.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib import _checks
from course_lib._export import export
from course_lib.deform.sampling import _bilinear_sample, output_size

IntPair = int | tuple[int, int]


def _pair(name: str, value: IntPair, minimum: int) -> tuple[int, int]:
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w); got {value!r}")
        return (_checks.integer(f"{name}[0]", value[0], minimum=minimum),
                _checks.integer(f"{name}[1]", value[1], minimum=minimum))
    v = _checks.integer(name, value, minimum=minimum)
    return v, v


def kernel_grid(kh: int, kw: int, dtype: torch.dtype = torch.float64,
                device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column index ``(i, j)`` of each tap ``k = i·kw + j`` (``Tensor[K]`` each)."""
    i = torch.arange(kh, dtype=dtype, device=device).repeat_interleave(kw)  # (K,)
    j = torch.arange(kw, dtype=dtype, device=device).repeat(kh)  # (K,)
    return i, j


@export("deform.sampling_positions")
def sampling_positions(offset: torch.Tensor, kernel_size: IntPair, stride: IntPair = 1,
                       padding: IntPair = 0, dilation: IntPair = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each tap reads: ``p_k`` of the module docstring, for every output position.

    Args:
        offset (Tensor[B, 2·G·kh·kw, H_out, W_out]): the offsets, torchvision's layout (B may be 0).
        kernel_size: ``(kh, kw)`` or one int for both.
        stride, padding, dilation: as for :func:`deform_conv2d`.

    Returns:
        ``(y, x)``, each ``Tensor[B, G, K, H_out, W_out]``: fractional input positions.

    Raises:
        TypeError: ``offset`` not a floating tensor, or a size that is not an int.
        ValueError: ``offset`` not 4-D, its channels not a positive multiple of ``2·kh·kw``, or a
            size out of range.
    """
    _checks.tensor("offset", offset, ndim=4, floating=True)
    kh, kw = _pair("kernel_size", kernel_size, 1)
    if offset.shape[1] == 0 or offset.shape[1] % (2 * kh * kw):
        raise ValueError(f"offset.shape[1] must be 2·offset_groups·kh·kw, a positive multiple of 2·{kh}·{kw} = "
                         f"{2 * kh * kw}; got offset shape {tuple(offset.shape)}")
    return _sampling_positions(offset, (kh, kw), _pair("stride", stride, 1), _pair("padding", padding, 0),
                               _pair("dilation", dilation, 1))


def _sampling_positions(offset: torch.Tensor, kernel_size: tuple[int, int], stride: tuple[int, int],
                        padding: tuple[int, int], dilation: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sampling_positions` on checked arguments (pairs), as :func:`deform_conv2d` calls it."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    b, channels, h_out, w_out = offset.shape
    k = kh * kw
    groups = channels // (2 * k)  # not reshape(b, -1, ...): that is ambiguous when b = 0
    off = offset.reshape(b, groups, k, 2, h_out, w_out)  # (B, G, K, 2, H_out, W_out): (dy, dx) interleaved
    i, j = kernel_grid(kh, kw, offset.dtype, offset.device)
    rows = torch.arange(h_out, dtype=offset.dtype, device=offset.device) * sh - ph  # (H_out,)
    cols = torch.arange(w_out, dtype=offset.dtype, device=offset.device) * sw - pw  # (W_out,)
    base_y = rows[None, :, None] + (i * dh)[:, None, None]  # (K, H_out, 1)
    base_x = cols[None, None, :] + (j * dw)[:, None, None]  # (K, 1, W_out)
    return base_y + off[:, :, :, 0], base_x + off[:, :, :, 1]  # (B, G, K, H_out, W_out) each


def _check_arguments(input, offset, weight, bias, mask, stride, padding, dilation
                     ) -> tuple[int, int, tuple[int, int], tuple[int, int], tuple[int, int]]:
    _checks.tensor("input", input, ndim=4, floating=True)
    _checks.tensor("offset", offset, ndim=4, floating=True)
    _checks.tensor("weight", weight, ndim=4, floating=True)
    named = {"input": input, "offset": offset, "weight": weight}
    if bias is not None:
        named["bias"] = _checks.tensor("bias", bias, ndim=1, floating=True)
    if mask is not None:
        named["mask"] = _checks.tensor("mask", mask, ndim=4, floating=True)
    _checks.same_dtype(**named)
    _checks.same_device(**named)
    b, c_in, h, w = input.shape
    c_out, c_in_group, kh, kw = weight.shape
    if c_in_group == 0 or c_in % c_in_group:
        raise ValueError(f"weight.shape[1] (input channels per group) must divide input's {c_in} channels; "
                         f"got weight shape {tuple(weight.shape)}")
    groups = c_in // c_in_group
    if c_out % groups:
        raise ValueError(f"weight.shape[0] (output channels) must be divisible by groups = {groups} "
                         f"(= {c_in} input channels / weight.shape[1] = {c_in_group}); got {c_out}")
    (sh, sw), (ph, pw), (dh, dw) = (_pair("stride", stride, 1), _pair("padding", padding, 0),
                                    _pair("dilation", dilation, 1))
    h_out, w_out = output_size(h, kh, sh, ph, dh), output_size(w, kw, sw, pw, dw)
    k = kh * kw
    if offset.shape[1] == 0 or offset.shape[1] % (2 * k):
        raise ValueError(f"offset.shape[1] must be 2·offset_groups·kh·kw, a positive multiple of 2·{kh}·{kw} = "
                         f"{2 * k}; got offset shape {tuple(offset.shape)}")
    offset_groups = offset.shape[1] // (2 * k)
    if c_in % offset_groups:
        raise ValueError(f"offset_groups = offset.shape[1] / (2·kh·kw) = {offset_groups} must divide input's "
                         f"{c_in} channels")
    want = (b, 2 * offset_groups * k, h_out, w_out)
    if tuple(offset.shape) != want:
        raise ValueError(f"offset must have shape (B, 2·offset_groups·kh·kw, H_out, W_out) = {want} for input "
                         f"{tuple(input.shape)} and this kernel/stride/padding/dilation; got {tuple(offset.shape)}")
    if mask is not None and tuple(mask.shape) != (b, offset_groups * k, h_out, w_out):
        raise ValueError(f"mask must have shape (B, offset_groups·kh·kw, H_out, W_out) = "
                         f"{(b, offset_groups * k, h_out, w_out)}; got {tuple(mask.shape)}")
    if bias is not None and bias.shape[0] != c_out:
        raise ValueError(f"bias must have shape ({c_out},) (weight.shape[0]); got {tuple(bias.shape)}")
    return groups, offset_groups, (sh, sw), (ph, pw), (dh, dw)


@export("deform.deform_conv2d")
def deform_conv2d(input: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor | None = None, stride: IntPair = 1, padding: IntPair = 0,
                  dilation: IntPair = 1, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Deformable convolution, the same call and numbers as ``torchvision.ops.deform_conv2d``.

    Args:
        input (Tensor[B, C_in, H, W]): the input.
        offset (Tensor[B, 2·G_off·kh·kw, H_out, W_out]): (dy, dx) per tap, interleaved.
        weight (Tensor[C_out, C_in/groups, kh, kw]): the kernel; ``groups`` is inferred.
        bias (Tensor[C_out] | None): added to every output position.
        stride, padding, dilation: ints or ``(h, w)`` pairs, as in ``F.conv2d``.
        mask (Tensor[B, G_off·kh·kw, H_out, W_out] | None): DCNv2's modulation; ``None`` = DCNv1.

    Returns:
        Tensor[B, C_out, H_out, W_out].

    Raises:
        TypeError: a non-tensor, a non-floating dtype, or mixed dtypes.
        ValueError: shapes that do not fit together (each message says which and why).

    Example:
        >>> x, w = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3)
        >>> out = deform_conv2d(x, torch.zeros(1, 18, 3, 3), w)
        >>> torch.allclose(out, torch.nn.functional.conv2d(x, w), atol=1e-5)
        True
    """
    groups, offset_groups, stride, padding, dilation = _check_arguments(
        input, offset, weight, bias, mask, stride, padding, dilation)
    b, c_in, h, w = input.shape
    c_out, c_in_group, kh, kw = weight.shape
    _, _, h_out, w_out = offset.shape
    k, n_pos = kh * kw, h_out * w_out
    y, x = _sampling_positions(offset, (kh, kw), stride, padding, dilation)  # (B, G_off, K, H_out, W_out)
    grouped = input.reshape(b * offset_groups, c_in // offset_groups, h, w)  # (B·G_off, C_in/G_off, H, W)
    columns = _bilinear_sample(grouped, y.reshape(b * offset_groups, k, n_pos),
                               x.reshape(b * offset_groups, k, n_pos))  # (B·G_off, C_in/G_off, K, L)
    columns = columns.reshape(b, offset_groups, c_in // offset_groups, k, n_pos)  # (B, G_off, C/G_off, K, L)
    if mask is not None:
        columns = columns * mask.reshape(b, offset_groups, 1, k, n_pos)
    columns = columns.reshape(b, groups, c_in_group * k, n_pos)  # (B, groups, C_in/groups·K, L): im2col
    kernel = weight.reshape(groups, c_out // groups, c_in_group * k)  # (groups, C_out/groups, C_in/groups·K)
    out = torch.matmul(kernel, columns)  # (B, groups, C_out/groups, L)
    out = out.reshape(b, c_out, h_out, w_out)  # (B, C_out, H_out, W_out)
    return out if bias is None else out + bias[:, None, None]


@export("deform.DeformConv2d")
class DeformConv2d(nn.Module):
    """A deformable conv layer that predicts its own offsets (and masks) from its input (DCNv2).

    ``offset_conv`` is a plain conv with the main conv's kernel size, stride, padding and
    dilation, so its output has the spatial size of the result; it produces
    ``2·G_off·K`` offset channels (+ ``G_off·K`` mask logits when ``modulated``). It starts at
    zero, so a fresh layer computes exactly ``F.conv2d(x, weight, bias, ...)``; training moves
    the sampling points away from the grid only where that lowers the loss.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias: as in
            ``nn.Conv2d`` / ``torchvision.ops.DeformConv2d``.
        offset_groups: how many independent offset fields (each used by ``in_channels / offset_groups`` channels).
        modulated: predict DCNv2 masks; ``False`` is DCNv1.
        mask_scale: the mask is ``mask_scale · sigmoid(logits)``: 2.0 (default) starts at 1, a plain
            conv; 1.0 is the paper's mask in [0, 1], starting at 0.5.

    Shapes: ``forward(x (Tensor[B, in_channels, H, W])) -> Tensor[B, out_channels, H_out, W_out]``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: IntPair = 0, dilation: IntPair = 1, groups: int = 1, bias: bool = True,
                 offset_groups: int = 1, modulated: bool = True, mask_scale: float = 2.0) -> None:
        super().__init__()
        in_channels = _checks.integer("in_channels", in_channels, minimum=1)
        out_channels = _checks.integer("out_channels", out_channels, minimum=1)
        groups = _checks.integer("groups", groups, minimum=1)
        offset_groups = _checks.integer("offset_groups", offset_groups, minimum=1)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups = {groups} must divide in_channels = {in_channels} and "
                             f"out_channels = {out_channels}")
        if in_channels % offset_groups:
            raise ValueError(f"offset_groups = {offset_groups} must divide in_channels = {in_channels}")
        self.kernel_size = _pair("kernel_size", kernel_size, 1)
        self.stride, self.padding = _pair("stride", stride, 1), _pair("padding", padding, 0)
        self.dilation = _pair("dilation", dilation, 1)
        self.in_channels, self.offset_groups, self.modulated = in_channels, offset_groups, bool(modulated)
        self.mask_scale = _checks.real("mask_scale", mask_scale, minimum=0, open_min=True)
        conv = nn.Conv2d(in_channels, out_channels, self.kernel_size, groups=groups, bias=bias)  # for its init
        self.weight = conv.weight  # (C_out, C_in/groups, kh, kw)
        self.bias = conv.bias
        k = self.kernel_size[0] * self.kernel_size[1]
        self.offset_conv = nn.Conv2d(in_channels, (3 if modulated else 2) * offset_groups * k, self.kernel_size,
                                     self.stride, self.padding, self.dilation)
        nn.init.zeros_(self.offset_conv.weight)
        if self.offset_conv.bias is not None:  # always: the conv is built with a bias
            nn.init.zeros_(self.offset_conv.bias)

    def offsets_and_mask(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The predicted ``offset`` (Tensor[B, 2·G·K, H_out, W_out]) and ``mask`` (or ``None``)."""
        out = self.offset_conv(x)  # (B, (2 or 3)·G·K, H_out, W_out)
        n_offset = 2 * self.offset_groups * self.kernel_size[0] * self.kernel_size[1]
        if not self.modulated:
            return out, None
        return out[:, :n_offset], self.mask_scale * torch.sigmoid(out[:, n_offset:])  # see the module docstring

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset, mask = self.offsets_and_mask(x)
        return deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding, self.dilation, mask)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.weight.shape[0]}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, "
                f"offset_groups={self.offset_groups}, modulated={self.modulated}, mask_scale={self.mask_scale}")
