"""course_lib._checks: each check passes good input through and names the argument on bad input."""

import pytest
import torch

from course_lib import _checks


def test_tensor_passes_and_returns():
    x = torch.zeros(2, 3)
    assert _checks.tensor("x", x, ndim=2, dtypes=(torch.float32,), floating=True) is x
    assert _checks.tensor("x", x, ndim=(1, 2)) is x


@pytest.mark.parametrize(
    "value, kwargs, error, message",
    [
        ([1.0], {}, TypeError, r"x must be Tensor; got list"),
        (torch.zeros(2), {"ndim": 2}, ValueError, r"x must have 2 dims; got shape \(2,\)"),
        (torch.zeros(2), {"ndim": (3, 4)}, ValueError, r"x must have 3 or 4 dims"),
        (torch.zeros(2), {"dtypes": (torch.float16,)}, TypeError, r"x must have dtype in \(torch.float16\); got torch.float32"),
        (torch.zeros(2, dtype=torch.int64), {"floating": True}, TypeError, r"x must have a floating-point dtype; got torch.int64"),
    ],
)
def test_tensor_rejects(value, kwargs, error, message):
    with pytest.raises(error, match=message):
        _checks.tensor("x", value, **kwargs)


def test_shape_binds_and_agrees_across_arguments():
    dims: dict[str, int] = {}
    assert _checks.shape("q", torch.zeros(2, 3, 5, 8), "B H T D", dims) == {"B": 2, "H": 3, "T": 5, "D": 8}
    _checks.shape("k", torch.zeros(2, 3, 7, 8), "B H S D", dims)
    assert dims["S"] == 7
    with pytest.raises(ValueError, match=r"v has D=4 \(dim 3\) but an earlier argument has D=8"):
        _checks.shape("v", torch.zeros(2, 3, 7, 4), "B H S D", dims)


def test_shape_literal_and_rank():
    _checks.shape("img", torch.zeros(1, 3, 4, 4), "B 3 H W")
    with pytest.raises(ValueError, match=r"img must have size 3 in dim 1; got shape \(1, 4, 4, 4\)"):
        _checks.shape("img", torch.zeros(1, 4, 4, 4), "B 3 H W")
    with pytest.raises(ValueError, match=r"q must have 4 dims \(B, H, T, D\); got shape \(2, 3\)"):
        _checks.shape("q", torch.zeros(2, 3), "B H T D")


def test_same_device_and_dtype():
    a, b = torch.zeros(1), torch.zeros(1, dtype=torch.float64)
    assert _checks.same_device(a=a, b=b) == torch.device("cpu")
    with pytest.raises(TypeError, match="a, b must have the same dtype; got a is torch.float32, b is torch.float64"):
        _checks.same_dtype(a=a, b=b)
    meta = torch.zeros(1, device="meta")
    with pytest.raises(ValueError, match="a, m must be on the same device; got a on cpu, m on meta"):
        _checks.same_device(a=a, m=meta)


def test_scalars():
    assert _checks.one_of("impl", "torch", ("torch", "triton")) == "torch"
    with pytest.raises(ValueError, match="impl must be one of 'torch', 'triton'; got 'cuda'"):
        _checks.one_of("impl", "cuda", ("torch", "triton"))
    assert _checks.integer("n", 3, minimum=1) == 3
    with pytest.raises(TypeError, match="n must be an int; got bool"):
        _checks.integer("n", True)
    with pytest.raises(TypeError, match="n must be an int; got float"):
        _checks.integer("n", 2.0)
    with pytest.raises(ValueError, match=r"n must be an int in \[1, 8\]; got 9"):
        _checks.integer("n", 9, minimum=1, maximum=8)
    assert _checks.real("t", 2, minimum=0, open_min=True) == 2.0
    with pytest.raises(ValueError, match=r"t must be a number in \(0, inf\]; got 0"):
        _checks.real("t", 0, minimum=0, open_min=True)
    with pytest.raises(ValueError, match="got nan"):
        _checks.real("t", float("nan"))
    with pytest.raises(TypeError, match="t must be a real number; got str"):
        _checks.real("t", "1")
