"""DynamicLossScaler's per-optimizer protocol, against torch.amp.GradScaler("cpu") step by step.

The cases are PyTorch's own grad-scaling tests (``test/test_cuda.py``, ``test_grad_scaling_*``),
written anew for the CPU and for this class: each runs the same training loop with our scaler and
with GradScaler and asserts the parameters and scales agree bit for bit, besides upstream's own
check against an unscaled control run. The upstream test each case comes from is in its name.
"""

import copy
import math
import pickle
from itertools import chain

import pytest
import torch
from torch import nn

from course_lib.numerics import DynamicLossScaler, update_scale

SCALERS = {
    "course_lib": lambda **kw: DynamicLossScaler(**kw),
    "torch": lambda **kw: torch.amp.GradScaler("cpu", **kw),
}


def two_params(scale: float = 4.0, kind: str = "course_lib"):
    """Issue 13's case: two scalar parameters, each with its own SGD (lr 1)."""
    p0, p1 = nn.Parameter(torch.tensor(1.0)), nn.Parameter(torch.tensor(1.0))
    return SCALERS[kind](init_scale=scale), p0, p1, torch.optim.SGD([p0], lr=1.0), torch.optim.SGD([p1], lr=1.0)


@pytest.mark.parametrize("kind", SCALERS)
def test_two_optimizers_one_unscaled_explicitly(kind):
    scaler, p0, p1, o0, o1 = two_params(kind=kind)
    scaler.scale(p0 + p1).backward()
    scaler.unscale_(o0)
    scaler.step(o0)
    scaler.step(o1)  # must unscale o1 itself: its gradient is still 4, the true gradient 1
    scaler.update()
    assert (p0.item(), p1.item(), scaler.get_scale()) == (0.0, 0.0, 4.0)


@pytest.mark.parametrize("kind", SCALERS)
def test_inf_in_one_optimizer_skips_it_and_halves_the_scale(kind):
    scaler, p0, p1, o0, o1 = two_params(kind=kind)
    scaler.scale(p0 + p1).backward()
    p1.grad.fill_(math.inf)
    scaler.unscale_(o0)
    scaler.step(o0)
    scaler.step(o1)
    scaler.update()
    assert (p0.item(), p1.item(), scaler.get_scale()) == (0.0, 1.0, 2.0)  # o0 stepped, o1 skipped


@pytest.mark.parametrize("kind", SCALERS)
def test_unscale_each_optimizer_then_step_each(kind):
    """The documented AMP pattern with several optimizers: unscale_ every one, clip, step every one."""
    scaler, p0, p1, o0, o1 = two_params(kind=kind)
    scaler.scale(3.0 * p0 + 5.0 * p1).backward()
    scaler.unscale_(o0)
    scaler.unscale_(o1)
    assert (p0.grad.item(), p1.grad.item()) == (3.0, 5.0)
    scaler.step(o0)
    scaler.step(o1)
    scaler.update()
    assert (p0.item(), p1.item()) == (-2.0, -4.0)


def test_protocol_errors_are_per_optimizer():
    scaler, p0, p1, o0, o1 = two_params()
    scaler.scale(p0 + p1).backward()
    scaler.unscale_(o0)
    with pytest.raises(RuntimeError, match="unscale_\\(\\) has already been called on this optimizer"):
        scaler.unscale_(o0)
    scaler.step(o0)
    with pytest.raises(RuntimeError, match="unscale_\\(\\) is being called after step\\(\\)"):
        scaler.unscale_(o0)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called on this optimizer"):
        scaler.step(o0)
    assert scaler.step(o1)  # o1 has its own state: still ready
    scaler.update()
    with pytest.raises(RuntimeError, match="update\\(\\) needs a step first"):
        scaler.update()


@pytest.mark.parametrize("kind", SCALERS)
def test_scale_driven_to_zero_carries_on(kind):
    """An inf gradient at every step: the scale halves down to 0.0 and the scaler keeps working."""
    scaler = SCALERS[kind]()  # 2^16
    p = nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([p], lr=1.0)
    for _ in range(200):  # 2^16 · 2^-k reaches 0.0 in float32 after 16 + 149 + 1 halvings
        opt.zero_grad()
        scaler.scale(p.sum()).backward()
        p.grad[0] = math.inf
        scaler.step(opt)
        scaler.update()
    assert scaler.get_scale() == 0.0 and torch.equal(p.detach(), torch.ones(2))
    # At scale 0 the inverse scale is inf: a finite gradient unscales to nan/inf and is *not* caught
    # (the check looks at the scaled gradient, 0, which is finite), so the step writes nan/inf.
    opt.zero_grad()
    scaler.scale(p.sum()).backward()
    assert torch.equal(p.grad, torch.zeros(2))
    p.grad[1] = 1.0
    scaler.step(opt)
    scaler.update()
    assert math.isnan(p[0].item()) and p[1].item() == -math.inf
    assert scaler.get_scale() == 0.0  # 0 · growth stays 0


def test_scale_to_zero_steps_match_grad_scaler():
    scales = {}
    for kind, make in SCALERS.items():
        scaler, p = make(init_scale=2.0**-140), nn.Parameter(torch.ones(1))
        opt = torch.optim.SGD([p], lr=1.0)
        history = []
        for _ in range(12):
            opt.zero_grad()
            scaler.scale(p.sum()).backward()
            p.grad[0] = math.nan
            scaler.step(opt)
            scaler.update()
            history.append(scaler.get_scale())
        scales[kind] = history
    assert scales["course_lib"] == scales["torch"] and scales["torch"][-1] == 0.0


# --- PyTorch's test_grad_scaling_* cases -------------------------------------------------------

def _models_optimizers(seed: int):
    torch.manual_seed(seed)
    control = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
    scaling = copy.deepcopy(control)
    return control, scaling, torch.optim.SGD(control.parameters(), lr=1.0), torch.optim.SGD(scaling.parameters(), lr=1.0)


def _data(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 8, generator=g), torch.randn(8, 8, generator=g)) for _ in range(4)]


SKIP_ITER = 2


def _run_scaling_case(run, unskipped: int, skipped: int, atol: float = 1e-7):
    """Upstream's ``_run_scaling_case``: control vs scaling run; here also course_lib vs GradScaler."""
    finals = {}
    for kind, make in SCALERS.items():
        control, scaling, opt_control, opt_scaling = _models_optimizers(0)
        scaler = make(init_scale=128.0, growth_factor=2.0, growth_interval=1)
        run(_data(), control, opt_control, scaler, False)
        scaler = run(_data(), scaling, opt_scaling, scaler, True) or scaler
        assert scaler.get_scale() == 128.0 * 2.0**unskipped * 0.5**skipped, kind
        for c, s in zip(control.parameters(), scaling.parameters()):
            torch.testing.assert_close(s, c, atol=atol, rtol=0)
        finals[kind] = [p.detach().clone() for p in scaling.parameters()]
    for ours, ref in zip(finals["course_lib"], finals["torch"]):
        assert torch.equal(ours, ref)


@pytest.mark.parametrize("try_pickle", [False, True])
def test_grad_scaling_autocast_pickle(try_pickle):
    """test_grad_scaling_autocast (without autocast: CPU float32), including its pickling variant."""
    def run(data, model, optimizer, scaler, try_scaling_api):
        for i, (x, target) in enumerate(data):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(x), target)
            if try_scaling_api:
                scaler.scale(loss).backward()
                if i == SKIP_ITER:
                    model[1].weight.grad.fill_(math.inf)
                scaler.step(optimizer)
                scaler.update()
                if try_pickle:
                    scaler = pickle.loads(pickle.dumps(scaler))
            else:
                loss.backward()
                if i != SKIP_ITER:
                    optimizer.step()
        return scaler
    _run_scaling_case(run, unskipped=3, skipped=1)


def test_grad_scaling_clipping():
    """test_grad_scaling_clipping: clip the *scaled* gradients at max_norm · scale."""
    def run(data, model, optimizer, scaler, try_scaling_api):
        max_norm = 0.2
        for i, (x, target) in enumerate(data):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(x), target)
            if try_scaling_api:
                scaler.scale(loss).backward()
                nn.utils.clip_grad_norm_(model.parameters(), max_norm * scaler.get_scale())
                if i == SKIP_ITER:
                    model[1].weight.grad.fill_(math.inf)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), max_norm)
                if i != SKIP_ITER:
                    optimizer.step()
    _run_scaling_case(run, unskipped=3, skipped=1, atol=1e-6)


def test_grad_scaling_clipping_separate_unscale():
    """test_grad_scaling_clipping_separate_unscale: unscale_, clip at the true max_norm, step."""
    def run(data, model, optimizer, scaler, try_scaling_api):
        max_norm = 0.2
        for i, (x, target) in enumerate(data):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(x), target)
            if try_scaling_api:
                scaler.scale(loss).backward()
                if i == SKIP_ITER:
                    model[1].weight.grad.fill_(math.inf)
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), max_norm)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), max_norm)
                if i != SKIP_ITER:
                    optimizer.step()
    _run_scaling_case(run, unskipped=3, skipped=1)


def test_grad_scaling_penalty():
    """test_grad_scaling_penalty: a gradient-norm penalty through autograd.grad(create_graph=True)."""
    def run(data, model, optimizer, scaler, try_scaling_api):
        for i, (x, target) in enumerate(data):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(x), target)
            if try_scaling_api:
                grads = torch.autograd.grad(scaler.scale(loss), model.parameters(), create_graph=True)
                inv_scale = 1.0 / scaler.get_scale()
                grads = [g * inv_scale for g in grads]
            else:
                grads = torch.autograd.grad(loss, model.parameters(), create_graph=True)
            loss = loss + sum(g.pow(2).sum() for g in grads).sqrt()
            if try_scaling_api:
                scaler.scale(loss).backward()
                if i == SKIP_ITER:
                    model[1].weight.grad.fill_(math.inf)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                if i != SKIP_ITER:
                    optimizer.step()
    _run_scaling_case(run, unskipped=3, skipped=1, atol=1e-6)


def test_grad_scaling_accumulation():
    """test_grad_scaling_accumulation: two backward passes per step, the scale constant between."""
    def run(data, model, optimizer, scaler, try_scaling_api):
        iters_to_accumulate = 2
        for i, (x, target) in enumerate(data):
            loss = nn.functional.mse_loss(model(x), target) / iters_to_accumulate
            (scaler.scale(loss) if try_scaling_api else loss).backward()
            if (i + 1) % iters_to_accumulate == 0:
                if try_scaling_api:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                optimizer.zero_grad()
    _run_scaling_case(run, unskipped=2, skipped=0)


def test_grad_scaling_multiple():
    """test_grad_scaling_multiple: 2 models, 2 optimizers, 2 losses; one optimizer unscaled explicitly."""
    finals = {}
    for kind, make in SCALERS.items():
        control0, scaling0, opt_control0, opt_scaling0 = _models_optimizers(0)
        control1, scaling1, opt_control1, opt_scaling1 = _models_optimizers(1)
        scaler = make(init_scale=128.0, growth_factor=2.0, growth_interval=1)
        data = _data()

        def run(model0, model1, optimizer0, optimizer1, try_scaling_api, scaler=scaler, data=data):
            for i, (x, target) in enumerate(data):
                optimizer0.zero_grad()
                optimizer1.zero_grad()
                out0, out1 = model0(x), model1(x)
                loss0 = nn.functional.mse_loss(0.3 * out0 + 0.7 * out1, target)
                loss1 = nn.functional.mse_loss(0.6 * out0 - 0.4 * out1, target)
                if try_scaling_api:
                    scaler.scale(loss0).backward(retain_graph=True)
                    scaler.scale(loss1).backward()
                    if i == SKIP_ITER:
                        model1[1].weight.grad.fill_(math.inf)
                    scaler.unscale_(optimizer0)
                    scaler.step(optimizer0)
                    scaler.step(optimizer1)
                    scaler.update()
                else:
                    loss0.backward(retain_graph=True)
                    loss1.backward()
                    optimizer0.step()
                    if i != SKIP_ITER:
                        optimizer1.step()

        run(control0, control1, opt_control0, opt_control1, False)
        run(scaling0, scaling1, opt_scaling0, opt_scaling1, True)
        assert scaler.get_scale() == 128.0 * 2.0**3 * 0.5, kind
        scaled = list(chain(scaling0.parameters(), scaling1.parameters()))
        for c, s in zip(chain(control0.parameters(), control1.parameters()), scaled):
            torch.testing.assert_close(s, c, atol=1e-6, rtol=0)
        finals[kind] = [p.detach().clone() for p in scaled]
    for ours, ref in zip(finals["course_lib"], finals["torch"]):
        assert torch.equal(ours, ref)


@pytest.mark.parametrize("source", SCALERS)
@pytest.mark.parametrize("target", SCALERS)
def test_grad_scaling_state_dict(source, target):
    """test_grad_scaling_state_dict, plus loading each class's state into the other."""
    s0 = SCALERS[source](init_scale=3.0, growth_factor=4.0, backoff_factor=0.5, growth_interval=2)
    s1 = SCALERS[target](init_scale=6.0, growth_factor=7.0, backoff_factor=0.8, growth_interval=1)
    s1.scale(torch.full((1,), 4.0))  # GradScaler creates its scale tensor lazily; load must overwrite it
    s1.load_state_dict(s0.state_dict())
    assert s1.get_scale() == 3.0
    assert s1.state_dict() == {"scale": 3.0, "growth_factor": 4.0, "backoff_factor": 0.5,
                               "growth_interval": 2, "_growth_tracker": 0}


def test_state_dict_round_trip_mid_training_and_bad_states():
    scaler, p0, p1, o0, o1 = two_params(scale=8.0)
    scaler.growth_interval = 3
    for _ in range(2):
        scaler.scale(p0 + p1).backward()
        scaler.step(o0)
        scaler.step(o1)
        scaler.update()
    restored = DynamicLossScaler()
    restored.load_state_dict(scaler.state_dict())
    assert restored.state_dict() == scaler.state_dict() and restored.get_growth_tracker() == 2
    with pytest.raises(ValueError, match="state_dict must have the keys .* missing \\['scale'"):
        restored.load_state_dict({})
    with pytest.raises(ValueError, match="state_dict\\['growth_factor'\\] must be a number in \\(1.0, inf\\]"):
        restored.load_state_dict({**scaler.state_dict(), "growth_factor": 0.5})


def test_pickle_refused_mid_iteration():
    scaler, p0, p1, o0, o1 = two_params()
    scaler.scale(p0 + p1).backward()
    scaler.unscale_(o0)
    with pytest.raises(RuntimeError, match="may only be pickled before"):
        pickle.dumps(scaler)
    scaler.step(o0)
    scaler.step(o1)
    scaler.update()
    assert pickle.loads(pickle.dumps(scaler)).get_scale() == 4.0


def test_grad_scaling_scale_nested_outputs():
    """test_grad_scaling_scale (one device): nested lists/tuples of outputs are scaled in place of structure."""
    scaler = DynamicLossScaler(init_scale=2.0)
    t = torch.full((1,), 4.0)
    out = scaler.scale((t.clone(), (t.clone(), t.clone()), [t.clone(), (t.clone(), t.clone())]))
    assert isinstance(out, tuple) and isinstance(out[2], list) and isinstance(out[2][1], tuple)
    assert out[0].item() == out[1][0].item() == out[2][1][1].item() == 8.0
    with pytest.raises(TypeError, match="outputs must have a floating-point dtype"):
        scaler.scale([torch.tensor(3)])


@pytest.mark.parametrize(("scale", "tracker", "found_inf", "interval"), [
    (4.0, 0, False, 3), (4.0, 2, False, 3), (4.0, 1, True, 3), (2.0**127, 0, False, 1), (0.0, 0, False, 1),
    (1e-45, 0, True, 1), (3.0, 0, False, 1),
])
def test_grad_scaling_update_scale(scale, tracker, found_inf, interval):
    """test_grad_scaling_update_scale: the rule against torch._amp_update_scale_ itself."""
    s = torch.tensor(scale, dtype=torch.float32)
    t = torch.tensor(tracker, dtype=torch.int32)
    torch._amp_update_scale_(s, t, torch.tensor(float(found_inf)), 3.0, 0.3, interval)
    assert update_scale(float(torch.tensor(scale)), tracker, found_inf, 3.0, 0.3, interval) == (s.item(), t.item())


def test_optimizer_without_gradients_counts_as_finite():
    """A documented difference: GradScaler's step raises AssertionError here; ours steps (a no-op)."""
    scaler, p0, p1, o0, o1 = two_params()
    scaler.scale(p0 * 1.0).backward()  # p1 gets no gradient
    assert scaler.step(o0) and scaler.step(o1)
    scaler.update()
    assert p1.item() == 1.0 and scaler.get_scale() == 4.0


def test_update_new_scale():
    scaler, p0, p1, o0, o1 = two_params()
    assert scaler.update(new_scale=0.5) == 0.5 and scaler.get_scale() == 0.5
    with pytest.raises(ValueError, match="new_scale must be a number in \\[0.0, inf\\]"):
        scaler.update(new_scale=-1.0)
