"""Chapter 1's exercises: correct alternatives pass, wrong ones fail naming the input."""

from __future__ import annotations

import numpy as np
import torch

from course_lib.autograd import Tensor, unbroadcast
from course_lib.autograd.engine import topological_order
from course_lib.autograd.exercises import (
    EXERCISES,
    backward_loop_ex,
    log_softmax_backward,
    matmul_backward,
    topological_order_ex,
    unbroadcast_grad,
)


def test_there_are_at_least_three_with_hints():
    assert len(EXERCISES) >= 3
    for ex in EXERCISES:
        assert ex.hints and ex.edge_cases and ex.random_case is not None


def test_unbroadcast_right_and_wrong():
    def via_our_engine(grad, shape):  # the library's own unbroadcast, on NumPy
        return torch.from_numpy(unbroadcast(grad.numpy(), shape))

    def via_autograd(grad, shape):  # let torch work it out: d/dx of (x.expand(...) * grad).sum()
        x = torch.zeros(shape, dtype=grad.dtype, requires_grad=True)
        (x.expand(grad.shape) * grad).sum().backward()
        return x.grad

    def leading_only(grad, shape):  # forgets dims that were size 1
        return grad.sum(dim=tuple(range(grad.dim() - len(shape)))) if grad.dim() > len(shape) else grad

    def no_keepdim(grad, shape):  # sums size-1 dims but drops them
        extra = grad.dim() - len(shape)
        grad = grad.sum(dim=tuple(range(extra))) if extra else grad
        dims = tuple(i for i, n in enumerate(shape) if n == 1)
        return grad.sum(dim=dims) if dims else grad

    assert unbroadcast_grad.check(via_our_engine, quiet=True)
    assert unbroadcast_grad.check(via_autograd, quiet=True)
    for wrong, case in ((leading_only, 2), (no_keepdim, 2)):
        result = unbroadcast_grad.check(wrong, quiet=True)
        assert not result.passed and result.attempted and result.failing_case is unbroadcast_grad.edge_cases[case - 1]
        assert f"edge case {case} of" in result.message and "shape = (2, 1)" in result.message


def test_matmul_backward_right_and_wrong():
    def via_our_engine(a, b, grad_out):
        ta, tb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
        (ta @ tb).backward(grad_out.numpy())
        return torch.from_numpy(ta.grad.data), torch.from_numpy(tb.grad.data)

    def no_transpose(a, b, grad_out):
        return grad_out @ b, a @ grad_out

    def swapped(a, b, grad_out):
        return (a.T @ grad_out).T, (grad_out @ b.T).T

    assert matmul_backward.check(via_our_engine, quiet=True)
    square = matmul_backward.check(no_transpose, quiet=True)  # shapes fit only for square matrices: wrong values
    assert not square.passed and "edge case 1 of" in square.message and "grad_out = tensor(" in square.message
    shapes = matmul_backward.check(lambda a, b, grad_out: (grad_out @ b.T, grad_out.T @ a), quiet=True)
    assert not shapes.passed and "edge case 2 of" in shapes.message  # (m, k) returned where (k, m) is due
    wrong = matmul_backward.check(swapped, quiet=True)
    assert not wrong.passed and wrong.failing_case is not None and "expected:" in wrong.message


def test_log_softmax_backward_right_and_wrong():
    def via_torch(out, grad_out):
        x = out.detach().clone().requires_grad_()  # log_softmax(out) == out: the same Jacobian
        torch.log_softmax(x, dim=-1).backward(grad_out)
        return x.grad

    def forgot_the_sum(out, grad_out):
        return grad_out - out.exp()

    def wrong_dim(out, grad_out):
        return grad_out - out.exp() * grad_out.sum(dim=0, keepdim=True)

    assert log_softmax_backward.check(via_torch, quiet=True)
    for wrong in (forgot_the_sum, wrong_dim):
        result = log_softmax_backward.check(wrong, quiet=True)
        assert not result.passed and result.failing_case is not None and "out = tensor(" in result.message


def test_stub_is_not_attempted_and_solution_is_hidden_until_asked(capsys):
    def stub(out, grad_out):
        raise NotImplementedError

    result = log_softmax_backward.check(stub)
    assert not result.attempted and "not attempted yet" in capsys.readouterr().out
    assert "grad_out.sum(dim=-1, keepdim=True)" in log_softmax_backward.solution()


# ---- the engine's two pieces, plugged into the library and judged against torch ------------------

def test_topological_order_exercise_accepts_the_engines_order_and_an_iterative_dfs():
    def kahn(root):  # a different correct order: Kahn's algorithm on the reversed graph
        nodes, stack = [], [root]
        seen = {root}
        while stack:
            n = stack.pop()
            nodes.append(n)
            for p in n._parents:
                if p not in seen:
                    seen.add(p)
                    stack.append(p)
        users = {n: 0 for n in nodes}
        for n in nodes:
            for p in set(n._parents):
                users[p] += 1
        ready, order = [root], []
        while ready:
            n = ready.pop()
            order.append(n)
            for p in set(n._parents):
                users[p] -= 1
                if users[p] == 0:
                    ready.append(p)
        return order[::-1]

    assert topological_order_ex.check(topological_order, quiet=True).passed
    assert topological_order_ex.check(kahn, quiet=True).passed
    assert topological_order_ex.check(topological_order_ex.reference, quiet=True).passed


def test_topological_order_exercise_rejects_wrong_orders():
    def bfs(root):  # breadth-first: a node can come before one of its consumers' other parents
        order, i = [root], 0
        while i < len(order):
            order.extend(p for p in order[i]._parents if p not in order)
            i += 1
        return order[::-1]

    for wrong in (lambda root: list(reversed(topological_order(root))), lambda root: [root], bfs):
        result = topological_order_ex.check(wrong, quiet=True)
        assert not result.passed and result.attempted and "program = Program(" in result.message


def test_backward_loop_exercise_right_and_wrong():
    assert backward_loop_ex.check(backward_loop_ex.reference, quiet=True).passed

    def assigns_instead_of_summing(root):
        grads, leaves = {root: np.ones_like(root.data)}, {}
        for node in reversed(topological_order(root)):
            g = grads.pop(node, None)
            if g is None:
                continue
            if node._vjp is None:
                leaves[node] = g
                continue
            for parent, gp in zip(node._parents, node._vjp(g)):
                grads[parent] = gp  # the bug: a second use overwrites the first
        return leaves

    result = backward_loop_ex.check(assigns_instead_of_summing, quiet=True)
    assert not result.passed and "edge case 1 of" in result.message  # x0 used by tanh and by the loss
