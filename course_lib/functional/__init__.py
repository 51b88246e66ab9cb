"""nn.Module vs torch.nn.functional: one model, two spellings, and what the module adds.

* :mod:`~course_lib.functional.model` — :class:`Net` (layers) and :func:`net_forward` (a pure
  function of a parameter dict), bit-identical; :func:`net_forward_naive` and
  :class:`FunctionalNet` show the ``training=`` pitfall of ``F.dropout`` / ``F.batch_norm``.
* :mod:`~course_lib.functional.module_features` — registration, hooks, ``.to()``:
  :func:`capture_activations`, :func:`tree_to`, and the unregistered-weights bug :class:`ListHeldNet`.
* :mod:`~course_lib.functional.per_sample` — per-sample gradients, ``vmap(grad)`` over
  ``functional_call`` vs a loop.
* :mod:`~course_lib.functional.experiment` — ``nn.Conv2d`` vs ``F.conv2d`` overhead; vmap vs loop
  (harnesses: ``course_lib.functional.experiment.<name>``, not re-exported here).
* :mod:`~course_lib.functional.dropout_bn_view` — the widget: dropout masks and batch-norm statistics.
* :mod:`~course_lib.functional.exercises` — the chapter's exercises.

Reference: PyTorch's ``torch/nn/modules/{module,batchnorm,dropout}.py`` and the ``torch.func``
per-sample-gradients tutorial. Notebook: ``02_nn_vs_functional``. Tests: ``tests/test_functional.py``.
"""

from course_lib.functional.dropout_bn_view import (
    DropoutBNState,
    RecordedCall,
    dropout_bn_state,
    dropout_bn_view,
    dropout_bn_widget,
    record_calls,
)
from course_lib.functional.model import FunctionalNet, Net, NetConfig, init_params, net_forward, net_forward_naive
from course_lib.functional.module_features import ListHeldNet, capture_activations, tree_to
from course_lib.functional.per_sample import per_sample_grads_loop, per_sample_grads_vmap

__all__ = [
    "DropoutBNState",
    "FunctionalNet",
    "ListHeldNet",
    "Net",
    "NetConfig",
    "RecordedCall",
    "capture_activations",
    "dropout_bn_state",
    "dropout_bn_view",
    "dropout_bn_widget",
    "init_params",
    "net_forward",
    "net_forward_naive",
    "per_sample_grads_loop",
    "per_sample_grads_vmap",
    "record_calls",
    "tree_to",
]
