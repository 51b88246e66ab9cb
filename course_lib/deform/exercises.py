"""Exercises of chapter 8 (deformable convolution), checked automatically.

* :data:`bilinear_weights` — the four bilinear weights of one fractional point.
* :data:`dilation_offsets` — the offsets that turn a 'same' k×k conv into a dilation-d conv.
* :data:`sample_point` — where tap (i, j) reads for output (y, x), from torchvision's offset layout.
* :data:`conv_output_size` — the output size formula.
* :data:`deform_conv` — ``deform_conv2d`` itself (one group, stride 1): sample the columns with
  :func:`~course_lib.deform.sampling.bilinear_sample`, then one matmul.

Each ``reference`` is the worked solution ``solution()`` shows — the mechanism written out, never a
call of the library function the exercise teaches; ``tests/test_deform_exercises.py`` checks each
against the library (and ``deform_conv`` against torchvision).

Notebook: ``08_deformable_conv`` §6. Tests: ``tests/test_deform_exercises.py``.
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch

from course_lib.deform.sampling import bilinear_sample, output_size
from course_lib.exercises import Exercise, default_equal, randn


def _as_float64_equal(got: Any, expected: Any) -> bool:
    """Tensors compared by value in float64 (a learner's float32 or int answer is fine)."""
    if isinstance(got, torch.Tensor) and isinstance(expected, torch.Tensor):
        return got.shape == expected.shape and torch.allclose(got.to(torch.float64), expected, atol=1e-9)
    return default_equal(got, expected, rtol=1e-9, atol=1e-9)


# --- 1. bilinear weights -------------------------------------------------------------------------


def _weights_reference(y: float, x: float) -> torch.Tensor:
    y0, x0 = math.floor(y), math.floor(x)  # the top-left pixel; floor, not int(): -0.25 -> -1
    ly, lx = y - y0, x - x0  # how far the point is toward row y0 + 1 and column x0 + 1
    hy, hx = 1 - ly, 1 - lx  # ... and how close it stays to row y0 and column x0
    # each corner's weight: (its row's weight) × (its column's weight); the four sum to 1
    return torch.tensor([hy * hx, hy * lx, ly * hx, ly * lx], dtype=torch.float64)


bilinear_weights = Exercise(
    title="the bilinear weights of one point",
    task="""
        Write `my_weights(y, x) -> Tensor[4]` (float64) for a point at fractional row y, column x.
        With y0 = floor(y), x0 = floor(x), return the weights of the four pixels
            (y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)
        in that order, so that the sampled value is Σ weight · pixel. (Negative y, x are allowed:
        the formula is the same; pixels outside the image are dealt with elsewhere.)
    """,
    reference=_weights_reference,
    edge_cases=[{"y": 2.0, "x": 3.0}, {"y": 0.5, "x": 0.5}, {"y": 1.25, "x": 0.0}, {"y": -0.25, "x": 2.75}],
    random_case=lambda rng: {"y": rng.uniform(-3, 10), "x": rng.uniform(-3, 10)},
    hints=["ly = y - y0 is how far the point is from row y0 toward row y0 + 1; row y0 gets weight 1 - ly.",
           "Each weight is a product: (row weight) × (column weight). Use math.floor, not int() (negative y!)."],
    equal=_as_float64_equal,
)

# --- 2. a dilated conv from offsets ------------------------------------------------------------------


def _dilation_reference(k: int, d: int) -> torch.Tensor:
    c = (k - 1) / 2  # the kernel's centre tap, in both directions
    per_tap = []
    for i in range(k):
        for j in range(k):  # tap k·i + j, in torchvision's order
            # deformable: y - c + i + dy; dilated: y - d·c + d·i. Equal when dy = (d - 1)·(i - c):
            # the regular grid scaled by d about its centre.
            per_tap += [(d - 1) * (i - c), (d - 1) * (j - c)]  # dy, dx
    return torch.tensor(per_tap, dtype=torch.float64)  # (2·k·k,)


dilation_offsets = Exercise(
    title="a dilated convolution as a deformable one",
    task="""
        Write `my_offsets(k, d) -> Tensor[2·k·k]` (float64), k odd, d >= 1: the per-tap offsets, in
        torchvision's order (dy, dx of tap 0 = (i=0, j=0), then tap 1 = (0, 1), ..., tap k·i + j),
        such that for every input x and kernel w
            deform_conv2d(x, offset_field(my_offsets(k, d), B, H, W), w, padding=(k - 1) // 2)
            == F.conv2d(x, w, padding=d * (k - 1) // 2, dilation=d)
    """,
    reference=_dilation_reference,
    edge_cases=[{"k": 1, "d": 3}, {"k": 3, "d": 1}, {"k": 3, "d": 2}, {"k": 5, "d": 3}],
    random_case=lambda rng: {"k": rng.choice([1, 3, 5, 7]), "d": rng.randint(1, 5)},
    hints=["Write both sampling positions of tap (i, j) for output (y, x): y - (k-1)/2 + i + dy for the "
           "deformable conv, y - d·(k-1)/2 + d·i for the dilated one. Solve for dy.",
           "dy = (d - 1)·(i - (k - 1)/2): the grid is scaled by d about its centre. Same for dx with j."],
    equal=_as_float64_equal,
)

# --- 3. where one tap reads -----------------------------------------------------------------------------


def _point_reference(offset: torch.Tensor, kernel_size: tuple[int, int], y: int, x: int, i: int, j: int,
                     stride: int, padding: int, dilation: int) -> tuple[float, float]:
    k = i * kernel_size[1] + j  # the tap's index: row-major over the kernel, kw = kernel_size[1]
    row = y * stride - padding + i * dilation  # the regular grid point of the plain convolution...
    col = x * stride - padding + j * dilation
    return row + offset[2 * k, y, x].item(), col + offset[2 * k + 1, y, x].item()  # ... moved by (dy, dx)


def _random_point_case(rng: random.Random) -> dict[str, Any]:
    kh, kw = rng.randint(1, 4), rng.randint(1, 4)
    h_out, w_out = rng.randint(1, 5), rng.randint(1, 5)
    return {"offset": 2 * randn(rng, 2 * kh * kw, h_out, w_out), "kernel_size": (kh, kw),
            "y": rng.randrange(h_out), "x": rng.randrange(w_out), "i": rng.randrange(kh), "j": rng.randrange(kw),
            "stride": rng.randint(1, 3), "padding": rng.randint(0, 2), "dilation": rng.randint(1, 3)}


_offset_3x2 = torch.arange(2 * 6 * 2 * 2, dtype=torch.float64).reshape(12, 2, 2) / 10  # (2·K, H_out, W_out)
sample_point = Exercise(
    title="where tap (i, j) reads for output (y, x)",
    task="""
        Write `my_point(offset, kernel_size, y, x, i, j, stride, padding, dilation) -> (row, col)`.
        offset is Tensor[2·kh·kw, H_out, W_out] (one image, one offset group), torchvision's layout:
        the offsets of tap k = i·kw + j are offset[2k] (dy) and offset[2k + 1] (dx).
        Return the fractional input position (two Python floats) that tap (i, j) of the kernel
        samples when the deformable conv computes output position (y, x).
    """,
    reference=_point_reference,
    edge_cases=[
        {"offset": torch.zeros(18, 3, 3, dtype=torch.float64), "kernel_size": (3, 3), "y": 0, "x": 0, "i": 0,
         "j": 0, "stride": 1, "padding": 1, "dilation": 1},
        {"offset": _offset_3x2, "kernel_size": (3, 2), "y": 1, "x": 0, "i": 2, "j": 1, "stride": 2, "padding": 1,
         "dilation": 2},
        {"offset": _offset_3x2, "kernel_size": (3, 2), "y": 0, "x": 1, "i": 1, "j": 0, "stride": 1, "padding": 0,
         "dilation": 3},
    ],
    random_case=_random_point_case,
    hints=["Without offsets the tap reads at (y·stride - padding + i·dilation, x·stride - padding + j·dilation).",
           "Then add offset[2k, y, x] to the row and offset[2k + 1, y, x] to the column, with k = i·kw + j "
           "(kw = kernel_size[1], not kernel_size[0])."],
    equal=lambda got, expected: default_equal(tuple(got) if isinstance(got, list | tuple) else got, expected,
                                              rtol=1e-9, atol=1e-9),
)

# --- 4. the output size ----------------------------------------------------------------------------------


def _size_reference(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    span = dilation * (kernel - 1) + 1  # input pixels one window covers, first tap to last
    return (size + 2 * padding - span) // stride + 1  # window starts in the padded input, every stride


def _random_size_case(rng: random.Random) -> dict[str, int]:
    while True:
        case = {"size": rng.randint(1, 40), "kernel": rng.randint(1, 7), "stride": rng.randint(1, 4),
                "padding": rng.randint(0, 3), "dilation": rng.randint(1, 3)}
        if case["size"] + 2 * case["padding"] >= case["dilation"] * (case["kernel"] - 1) + 1:
            return case


conv_output_size = Exercise(
    title="the output size of a (deformable) convolution",
    task="""
        Write `my_out_size(size, kernel, stride, padding, dilation) -> int`: H_out for an input of
        height `size`. The offset and mask tensors of deform_conv2d must have exactly this size.
    """,
    reference=_size_reference,
    edge_cases=[{"size": 1, "kernel": 1, "stride": 1, "padding": 0, "dilation": 1},
                {"size": 7, "kernel": 3, "stride": 2, "padding": 1, "dilation": 1},
                {"size": 9, "kernel": 3, "stride": 2, "padding": 0, "dilation": 2},
                {"size": 8, "kernel": 3, "stride": 3, "padding": 1, "dilation": 1}],
    random_case=_random_size_case,
    n_random=60,
    hints=["A dilated kernel spans dilation·(kernel - 1) + 1 input pixels.",
           "Count the window's start positions in the padded input, stepping by stride: floor division, plus 1."],
)


# --- 5. deform_conv2d itself ------------------------------------------------------------------------------


def _deform_conv_reference(input: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                           padding: int) -> torch.Tensor:
    b, c, _, _ = input.shape
    c_out, _, kh, kw = weight.shape
    h_out, w_out = offset.shape[2:]
    rows = torch.arange(h_out, dtype=input.dtype)[:, None] - padding  # (H_out, 1): the window's top row
    cols = torch.arange(w_out, dtype=input.dtype)[None, :] - padding  # (1, W_out): its left column
    taps = []
    for k in range(kh * kw):  # one tap at a time: where it reads, for every output position
        i, j = divmod(k, kw)
        y = rows + i + offset[:, 2 * k]  # (B, H_out, W_out): dy of tap k is channel 2k
        x = cols + j + offset[:, 2 * k + 1]  # dx is channel 2k + 1
        taps.append(bilinear_sample(input, y, x))  # (B, C, H_out, W_out), zero outside the image
    columns = torch.stack(taps, dim=2)  # (B, C, K, H_out, W_out): the im2col matrix
    columns = columns.reshape(b, c * kh * kw, h_out * w_out)  # (B, C·K, L): explicit sizes, fine at B = 0
    out = weight.reshape(c_out, c * kh * kw) @ columns  # (B, C_out, L): one matmul
    return out.reshape(b, c_out, h_out, w_out)


def _random_conv_case(rng: random.Random) -> dict[str, Any]:
    b, c, c_out = rng.randint(1, 2), rng.randint(1, 3), rng.randint(1, 3)
    kh, kw, padding = rng.randint(1, 3), rng.randint(1, 3), rng.randint(0, 1)
    h, w = rng.randint(max(1, kh - 2 * padding), 6), rng.randint(max(1, kw - 2 * padding), 6)
    h_out, w_out = output_size(h, kh, 1, padding), output_size(w, kw, 1, padding)
    return {"input": randn(rng, b, c, h, w), "offset": 1.5 * randn(rng, b, 2 * kh * kw, h_out, w_out),
            "weight": randn(rng, c_out, c, kh, kw), "padding": padding}


_g = torch.Generator().manual_seed(8)
deform_conv = Exercise(
    title="deform_conv2d from bilinear sampling and one matmul",
    task="""
        Write `my_deform_conv(input, offset, weight, padding) -> Tensor[B, C_out, H_out, W_out]`:
        a deformable convolution with stride 1, dilation 1, one offset group, one weight group, no
        bias, no mask — torchvision.ops.deform_conv2d(input, offset, weight, padding=padding).
            input  (B, C, H, W)
            offset (B, 2·kh·kw, H_out, W_out): offset[:, 2k] is dy, offset[:, 2k+1] is dx of tap
                   k = i·kw + j
            weight (C_out, C, kh, kw)
        Tap (i, j) of output (y, x) reads input at (y - padding + i + dy, x - padding + j + dx).
        Use `course_lib.deform.bilinear_sample(input, ys, xs)` (ys, xs of shape (B, ...), zero
        outside the image) to read every tap's column, then multiply by the weights with one
        matmul. It must work for a batch of 0 too.
    """,
    reference=_deform_conv_reference,
    edge_cases=[
        {"input": torch.arange(9.0, dtype=torch.float64).reshape(1, 1, 3, 3),  # zero offsets: F.conv2d
         "offset": torch.zeros(1, 18, 3, 3, dtype=torch.float64), "weight": torch.ones(1, 1, 3, 3, dtype=torch.float64),
         "padding": 1},
        {"input": torch.randn(2, 2, 4, 5, generator=_g, dtype=torch.float64),  # kh != kw, far outside
         "offset": 4 * torch.randn(2, 12, 2, 4, generator=_g, dtype=torch.float64),
         "weight": torch.randn(3, 2, 3, 2, generator=_g, dtype=torch.float64), "padding": 0},
        {"input": torch.zeros(0, 1, 3, 3, dtype=torch.float64), "offset": torch.zeros(0, 18, 1, 1, dtype=torch.float64),
         "weight": torch.ones(1, 1, 3, 3, dtype=torch.float64), "padding": 0},  # a batch of 0
    ],
    random_case=_random_conv_case,
    n_random=15,
    hints=["Build, for tap k, the positions ys = (row index - padding + i) + offset[:, 2k] of shape "
           "(B, H_out, W_out); bilinear_sample(input, ys, xs) then gives that tap's (B, C, H_out, W_out).",
           "Stack the K taps into columns (B, C, K, H_out, W_out) — the order C then K matches "
           "weight.reshape(C_out, C·K) — reshape to (B, C·K, L) and multiply.",
           "reshape(b, -1) cannot work out -1 when b = 0: give every size explicitly."],
    equal=_as_float64_equal,
)
