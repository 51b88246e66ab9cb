"""The exercises of chapter 8 accept right answers and reject wrong ones, naming the input."""

from __future__ import annotations

import math

import torch

from course_lib.deform.exercises import bilinear_weights, conv_output_size, dilation_offsets, sample_point


def _rejects(exercise, wrong, shown):
    result = exercise.check(wrong, quiet=True)
    assert not result and result.attempted and result.failing_case is not None
    assert shown in result.message, result.message


def test_bilinear_weights_exercise():
    def right(y, x):
        ly, lx = y - math.floor(y), x - math.floor(x)
        return torch.tensor([(1 - ly) * (1 - lx), (1 - ly) * lx, ly * (1 - lx), ly * lx], dtype=torch.float64)

    def truncates(y, x):  # int() rounds toward 0: wrong for negative positions
        ly, lx = y - int(y), x - int(x)
        return torch.tensor([(1 - ly) * (1 - lx), (1 - ly) * lx, ly * (1 - lx), ly * lx], dtype=torch.float64)

    def swapped(y, x):  # the (y0, x0+1) and (y0+1, x0) corners exchanged
        return right(y, x)[[0, 2, 1, 3]]

    assert bilinear_weights.check(right, quiet=True)
    _rejects(bilinear_weights, truncates, "y = ")
    _rejects(bilinear_weights, swapped, "x = ")


def test_dilation_offsets_exercise():
    def right(k, d):
        c = (k - 1) / 2
        return torch.tensor([v for i in range(k) for j in range(k) for v in ((d - 1) * (i - c), (d - 1) * (j - c))])

    def not_centred(k, d):
        return torch.tensor([v for i in range(k) for j in range(k) for v in ((d - 1) * i, (d - 1) * j)],
                            dtype=torch.float64)

    def dx_first(k, d):
        return right(k, d).reshape(-1, 2).flip(1).reshape(-1)

    assert dilation_offsets.check(right, quiet=True)  # float32 answer: compared by value
    _rejects(dilation_offsets, not_centred, "k = ")
    _rejects(dilation_offsets, dx_first, "d = ")


def test_sample_point_exercise():
    def right(offset, kernel_size, y, x, i, j, stride, padding, dilation):
        k = i * kernel_size[1] + j
        return (y * stride - padding + i * dilation + offset[2 * k, y, x].item(),
                x * stride - padding + j * dilation + offset[2 * k + 1, y, x].item())

    def uses_kh(offset, kernel_size, y, x, i, j, stride, padding, dilation):
        k = i * kernel_size[0] + j
        return (y * stride - padding + i * dilation + offset[2 * k, y, x].item(),
                x * stride - padding + j * dilation + offset[2 * k + 1, y, x].item())

    def planar_layout(offset, kernel_size, y, x, i, j, stride, padding, dilation):  # all dy, then all dx
        k, n = i * kernel_size[1] + j, kernel_size[0] * kernel_size[1]
        return (y * stride - padding + i * dilation + offset[k, y, x].item(),
                x * stride - padding + j * dilation + offset[n + k, y, x].item())

    assert sample_point.check(right, quiet=True)
    _rejects(sample_point, uses_kh, "kernel_size = ")
    _rejects(sample_point, planar_layout, "offset = tensor")


def test_output_size_exercise():
    def right(size, kernel, stride, padding, dilation):
        return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1

    def ignores_dilation(size, kernel, stride, padding, dilation):
        return (size + 2 * padding - kernel) // stride + 1

    def rounds_up(size, kernel, stride, padding, dilation):
        return math.ceil((size + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1

    assert conv_output_size.check(right, quiet=True)
    _rejects(conv_output_size, ignores_dilation, "dilation = ")
    _rejects(conv_output_size, rounds_up, "stride = ")
    stub = conv_output_size.check(lambda **_: (_ for _ in ()).throw(NotImplementedError), quiet=True)
    assert not stub and not stub.attempted
