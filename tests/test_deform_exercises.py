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


# --- the worked solutions: instructive, and equal to the library ------------------------------------------

TAUGHT = {  # exercise -> the library functions it teaches (its solution must not just call them)
    "bilinear_weights": {"bilinear_neighbours", "bilinear_sample", "_bilinear_sample"},
    "dilation_offsets": {"scale_offsets", "offset_field"},
    "sample_point": {"sampling_positions", "_sampling_positions"},
    "conv_output_size": {"output_size"},
    "deform_conv": {"deform_conv2d", "DeformConv2d"},
}


def _called_names(fn) -> set[str]:
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    return {node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute)}


def test_no_solution_merely_calls_the_function_it_teaches():
    from course_lib.deform import exercises

    for name, taught in TAUGHT.items():
        reference = getattr(exercises, name).reference
        assert not _called_names(reference) & taught, f"{name}'s solution calls {_called_names(reference) & taught}"
        assert len(inspect_lines(reference)) >= 3, f"{name}'s solution is a one-liner"


def inspect_lines(fn) -> list[str]:
    import inspect

    body = inspect.getsource(fn).split(":", 1)[1]
    return [line for line in body.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_solutions_equal_the_library():
    import torchvision.ops as tvo

    from course_lib.deform import bilinear_neighbours, output_size, sampling_positions, scale_offsets
    from course_lib.deform.exercises import deform_conv

    for case in bilinear_weights.cases():
        expected = bilinear_neighbours(torch.tensor(case["y"], dtype=torch.float64),
                                       torch.tensor(case["x"], dtype=torch.float64)).weights
        torch.testing.assert_close(bilinear_weights.reference(**case), expected, atol=1e-12, rtol=0)
    for case in dilation_offsets.cases():
        torch.testing.assert_close(dilation_offsets.reference(**case), scale_offsets(case["k"], case["k"], case["d"]))
    for case in sample_point.cases():
        py, px = sampling_positions(case["offset"][None], case["kernel_size"], case["stride"], case["padding"],
                                    case["dilation"])
        k = case["i"] * case["kernel_size"][1] + case["j"]
        expected = (py[0, 0, k, case["y"], case["x"]].item(), px[0, 0, k, case["y"], case["x"]].item())
        assert sample_point.equal(sample_point.reference(**case), expected)
    for case in conv_output_size.cases():
        assert conv_output_size.reference(**case) == output_size(**case)
    for case in deform_conv.cases():
        expected = tvo.deform_conv2d(case["input"], case["offset"], case["weight"], padding=case["padding"])
        got = deform_conv.reference(**case)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, atol=1e-12, rtol=1e-10)


def test_deform_conv_exercise():
    from course_lib.deform import deform_conv2d
    from course_lib.deform.exercises import deform_conv

    def right(input, offset, weight, padding):  # the library, for once: a right answer must pass
        return deform_conv2d(input, offset, weight, padding=padding)

    def flattens_with_minus_one(input, offset, weight, padding):  # fails at batch 0
        out = deform_conv2d(input, offset, weight, padding=padding)
        return out.reshape(input.shape[0], -1).reshape(out.shape)

    def dx_dy_swapped(input, offset, weight, padding):
        swapped = offset.reshape(offset.shape[0], -1, 2, *offset.shape[2:]).flip(2).reshape(offset.shape)
        return deform_conv2d(input, swapped, weight, padding=padding)

    assert deform_conv.check(right, quiet=True)
    _rejects(deform_conv, flattens_with_minus_one, "input = ")
    _rejects(deform_conv, dx_dy_swapped, "offset = ")
