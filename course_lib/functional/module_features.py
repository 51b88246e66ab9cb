"""What ``nn.Module`` adds on top of the functions: registration, state, mode, hooks, ``.to()``.

A module is bookkeeping around functional calls. Assigning an ``nn.Parameter`` or an
``nn.Module`` as an attribute goes through ``Module.__setattr__``, which files it in
``_parameters`` / ``_modules``; everything else follows from that registry:

* ``parameters()`` / ``named_parameters()`` — what an optimizer trains;
* ``state_dict()`` / ``load_state_dict()`` — parameters *and* buffers (running statistics),
  by dotted name;
* ``train()`` / ``eval()`` — sets ``training`` on every registered submodule;
* ``register_forward_hook`` — code that runs around every call (:func:`capture_activations`);
* ``.to(dtype | device)`` — converts every registered tensor in place.

A tensor kept anywhere else — a plain attribute, a Python list — is invisible to all five;
:class:`ListHeldNet` is that bug, kept to be demonstrated. The functional spelling gets none of
this for free: :func:`tree_to` is the one-liner it needs for ``.to()``.

Notebook: ``02_nn_vs_functional`` (section "What a Module adds"). Tests: ``tests/test_functional.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib import _checks
from course_lib._export import export


@export("functional.ListHeldNet")
class ListHeldNet(nn.Module):
    """A linear layer whose weights sit in a Python list: *not* registered (the bug, on purpose).

    ``forward`` works, but ``parameters()`` is empty, ``state_dict()`` is empty, and ``.to()``
    leaves the weights behind. ``nn.ParameterList`` is the fix.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        _checks.integer("in_features", in_features, minimum=1)
        _checks.integer("out_features", out_features, minimum=1)
        self.weights = [nn.Parameter(torch.randn(out_features, in_features) / in_features**0.5),
                        nn.Parameter(torch.zeros(out_features))]  # a list: Module never sees them

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (Tensor[N, in_features])`` -> ``Tensor[N, out_features]``."""
        weight, bias = self.weights
        return torch.nn.functional.linear(x, weight, bias)


@export("functional.capture_activations")
def capture_activations(model: nn.Module, x: torch.Tensor,
                        names: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
    """Run ``model(x)`` once and return the outputs of its submodules, recorded by forward hooks.

    The hooks are removed afterwards even if the forward raises, so the model is left as found.

    Args:
        model: any module.
        x: its input.
        names: which submodules (dotted names from ``named_modules()``); default: every leaf module.

    Returns:
        ``{submodule name: its output, detached}``, in call order.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: a name in ``names`` is not a submodule of ``model``.
    """
    _checks.instance("model", model, nn.Module)
    modules = dict(model.named_modules())
    if names is None:
        names = tuple(n for n, m in modules.items() if n and not any(True for _ in m.children()))
    unknown = [n for n in names if n not in modules]
    if unknown:
        raise ValueError(f"names must be submodules of model; {unknown} are not (known: {[n for n in modules if n]})")
    seen: dict[str, torch.Tensor] = {}
    handles = [modules[n].register_forward_hook(lambda _m, _in, out, n=n: seen.__setitem__(n, out.detach()))
               for n in names]
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return seen


@export("functional.tree_to")
def tree_to(tree: dict[str, torch.Tensor], dtype: torch.dtype | None = None,
            device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """``Module.to()`` for the functional spelling: convert every tensor of a parameter dict.

    Floating-point tensors take ``dtype``; integer ones (``num_batches_tracked``) keep theirs,
    as ``Module.to`` does. Leaves that required grad stay leaves that require grad.
    """
    _checks.instance("tree", tree, dict)
    out = {}
    for name, t in tree.items():
        _checks.tensor(f"tree[{name!r}]", t)
        moved = t.detach().to(device=device, dtype=dtype if t.is_floating_point() else None)
        out[name] = moved.requires_grad_(t.requires_grad)
    return out
