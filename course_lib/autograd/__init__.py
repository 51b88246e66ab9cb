"""Reverse-mode automatic differentiation from scratch, checked against ``torch.autograd``.

Modules, bottom-up:

* :mod:`~course_lib.autograd.engine` — the topological sort and the backward pass, over any
  object with the ``Node`` protocol;
* :mod:`~course_lib.autograd.grad_mode` — ``no_grad``;
* :mod:`~course_lib.autograd.tensor` — ``Tensor`` and its ops;
* :mod:`~course_lib.autograd.gradcheck` — central differences;
* :mod:`~course_lib.autograd.functions` — custom ``torch.autograd.Function``\\ s;
* :mod:`~course_lib.autograd.mlp` — the digits MLP on both engines;
* :mod:`~course_lib.autograd.backward_view` — the backward-pass widget (state, view, widget);
* :mod:`~course_lib.autograd.experiment` — the cheap-gradient timing (harness, not re-exported);
* :mod:`~course_lib.autograd.exercises`.

Notebook: ``01_autograd``. Tests: ``tests/test_autograd*.py``.
"""

from course_lib.autograd.backward_view import (
                                     BackwardState,
                                     BackwardTrace,
                                     backward_state,
                                     backward_view,
                                     backward_widget,
                                     example_graph,
                                     trace_backward,
)
from course_lib.autograd.functions import logsumexp, straight_through_sign
from course_lib.autograd.grad_mode import is_grad_enabled, no_grad
from course_lib.autograd.gradcheck import GradcheckError, gradcheck
from course_lib.autograd.mlp import (
                                     DigitsConfig,
                                     DigitsRun,
                                     cross_entropy,
                                     init_params,
                                     load_digits_split,
                                     mlp_forward,
                                     train_digits,
)
from course_lib.autograd.tensor import Tensor, unbroadcast

__all__ = [
    "BackwardState",
    "BackwardTrace",
    "DigitsConfig",
    "DigitsRun",
    "GradcheckError",
    "Tensor",
    "backward_state",
    "backward_view",
    "backward_widget",
    "cross_entropy",
    "example_graph",
    "gradcheck",
    "init_params",
    "is_grad_enabled",
    "load_digits_split",
    "logsumexp",
    "mlp_forward",
    "no_grad",
    "straight_through_sign",
    "trace_backward",
    "train_digits",
    "unbroadcast",
]
