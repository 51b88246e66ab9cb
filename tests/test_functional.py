"""Tests for course_lib.functional: module vs functional spellings, pitfalls, per-sample grads."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.functional import (
    FunctionalNet,
    ListHeldNet,
    Net,
    NetConfig,
    capture_activations,
    dropout_bn_view,
    dropout_bn_widget,
    init_params,
    net_forward,
    net_forward_naive,
    per_sample_grads_loop,
    per_sample_grads_vmap,
    record_calls,
    tree_to,
)
from course_lib.functional import exercises as ex
from course_lib.functional.dropout_bn_view import FORMS, MODES, dropout_bn_state
from course_lib.functional.experiment import ConvOverhead, plot_conv_overhead, time_conv_overhead, time_per_sample

CFG = NetConfig(in_features=13, hidden=17, classes=5, p_drop=0.3)
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-10, atol=1e-12)}


def _pair(dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    net = Net(CFG).to(dtype)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in net.named_parameters()}
    buffers = {k: v.detach().clone() for k, v in net.named_buffers()}
    return net, params, buffers


# --- two spellings, bit-identical ----------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("batch", [2, 97])
def test_module_and_function_are_bit_identical(dtype, training, batch):
    net, params, buffers = _pair(dtype)
    net.train(training)
    x = torch.randn(batch, 2 * CFG.in_features, dtype=dtype)[:, ::2]  # non-contiguous input
    assert not x.is_contiguous()
    for _step in range(2):  # the second step sees the running statistics the first one updated
        torch.manual_seed(1)
        out_m = net(x)
        torch.manual_seed(1)
        out_f = net_forward(params, buffers, x, CFG, training=training)
        assert torch.equal(out_m, out_f)
        grads_m = torch.autograd.grad(out_m.square().sum(), list(net.parameters()))
        grads_f = torch.autograd.grad(out_f.square().sum(), [params[k] for k, _ in net.named_parameters()])
        assert all(torch.equal(a, b) for a, b in zip(grads_m, grads_f))
        for name, buf in net.named_buffers():
            assert torch.equal(buf, buffers[name]), name
    assert int(buffers["bn.num_batches_tracked"]) == (2 if training else 0)


@settings(max_examples=15, deadline=None)
@given(d_in=st.integers(1, 9), hidden=st.integers(1, 9), classes=st.integers(1, 5),
       p=st.sampled_from([0.0, 0.2, 0.5, 0.9]), batch=st.integers(2, 7), seed=st.integers(0, 2**16))
def test_property_bit_identical_for_any_config(d_in, hidden, classes, p, batch, seed):
    """Any sizes, any dropout p: the two spellings agree bit for bit in training mode."""
    cfg = NetConfig(in_features=d_in, hidden=hidden, classes=classes, p_drop=p)
    params, buffers = init_params(cfg, seed=seed)
    torch.manual_seed(seed)
    net = Net(cfg).train()
    x = torch.randn(batch, d_in)
    torch.manual_seed(seed + 1)
    out_m = net(x)
    torch.manual_seed(seed + 1)
    out_f = net_forward(params, buffers, x, cfg, training=True)
    assert torch.equal(out_m, out_f)
    assert torch.equal(net.bn.running_var, buffers["bn.running_var"])


def test_init_params_matches_net_init_and_leaves_rng_alone():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    params, buffers = init_params(CFG, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(7)
    net = Net(CFG)
    assert all(torch.equal(params[k], v) for k, v in net.named_parameters())
    assert all(p.requires_grad and p.is_leaf for p in params.values())
    assert set(buffers) == {k for k, _ in net.named_buffers()}


def test_functional_net_loads_net_state_and_matches():
    net = Net(CFG)
    fnet = FunctionalNet(CFG)
    fnet.load_state_dict(net.state_dict())  # same names both ways
    x = torch.randn(9, CFG.in_features)
    net.eval(), fnet.eval()
    assert torch.equal(net(x), fnet(x))


# --- the pitfall: F.dropout defaults to training=True, F.batch_norm to training=False ---------


def test_naive_functional_keeps_dropout_on_after_eval():
    naive = FunctionalNet(CFG, pass_training=False).eval()
    right = FunctionalNet(CFG, pass_training=True).eval()
    right.load_state_dict(naive.state_dict())
    x = torch.randn(64, CFG.in_features)
    assert not torch.equal(naive(x), naive(x))  # dropout still draws masks in eval mode
    assert torch.equal(right(x), right(x))  # deterministic, as eval() promises


def test_naive_functional_never_updates_batch_norm_statistics():
    naive = FunctionalNet(CFG, pass_training=False).train()
    right = FunctionalNet(CFG, pass_training=True).train()
    right.load_state_dict(naive.state_dict())
    x = 3 * torch.randn(32, CFG.in_features) + 2
    naive(x), right(x)
    assert torch.equal(naive.bn.running_mean, torch.zeros(CFG.hidden))
    assert torch.equal(naive.bn.running_var, torch.ones(CFG.hidden))
    assert not torch.equal(right.bn.running_mean, torch.zeros(CFG.hidden))
    # what the naive net normalised with: the running stats, not the batch's (eval semantics)
    _, calls = record_calls(lambda: naive(x))
    bn = next(c for c in calls if c.name == "batch_norm")
    assert bn.arguments["training"] is False
    assert next(c for c in calls if c.name == "dropout").arguments["training"] is True


def test_net_forward_naive_equals_eval_bn_with_dropout_on():
    _, params, buffers = _pair()
    x = torch.randn(8, CFG.in_features)
    torch.manual_seed(3)
    naive = net_forward_naive(params, buffers, x, CFG)
    torch.manual_seed(3)
    h = F.batch_norm(F.linear(x, params["fc1.weight"], params["fc1.bias"]), buffers["bn.running_mean"],
                     buffers["bn.running_var"], params["bn.weight"], params["bn.bias"], False, CFG.momentum, CFG.eps)
    expected = F.linear(F.dropout(h.relu(), CFG.p_drop, True), params["fc2.weight"], params["fc2.bias"])
    assert torch.equal(naive, expected)


# --- what a Module adds --------------------------------------------------------------------


def test_registration_state_dict_mode_and_to():
    net = Net(CFG)
    assert [n for n, _ in net.named_parameters()] == ["fc1.weight", "fc1.bias", "bn.weight", "bn.bias",
                                                      "fc2.weight", "fc2.bias"]
    clone = Net(CFG)
    clone.load_state_dict(copy.deepcopy(net.state_dict()))
    x = torch.randn(4, CFG.in_features)
    assert torch.equal(clone.eval()(x), net.eval()(x))
    net.train()
    assert all(m.training for m in net.modules())
    net.eval()
    assert not any(m.training for m in net.modules())
    net64 = net.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in net64.parameters())
    assert net64.bn.num_batches_tracked.dtype == torch.int64


def test_list_held_weights_are_invisible_to_the_module():
    layer = ListHeldNet(3, 2)
    assert layer(torch.randn(4, 3)).shape == (4, 2)  # forward works...
    assert list(layer.parameters()) == [] and layer.state_dict() == {}  # ...but nothing is registered
    layer.to(torch.float64)
    assert layer.weights[0].dtype == torch.float32  # .to() left the weights behind
    with pytest.raises(ValueError, match="in_features must be an int in"):
        ListHeldNet(0, 2)


def test_capture_activations_records_and_removes_hooks():
    net = Net(CFG).eval()
    x = torch.randn(6, CFG.in_features)
    acts = capture_activations(net, x)
    assert list(acts) == ["fc1", "bn", "drop", "fc2"]
    assert torch.equal(acts["fc2"], net(x)) and acts["bn"].shape == (6, CFG.hidden)
    assert all(not m._forward_hooks for m in net.modules())
    assert list(capture_activations(net, x, ("bn",))) == ["bn"]
    with pytest.raises(ValueError, match=r"names must be submodules of model; \['conv'\]"):
        capture_activations(net, x, ("conv",))
    with pytest.raises(TypeError, match="model must be Module"):
        capture_activations(lambda t: t, x)


def test_tree_to_converts_floats_and_keeps_counters():
    params, buffers = init_params(CFG)
    moved = tree_to(params | buffers, dtype=torch.float64)
    assert moved["fc1.weight"].dtype == torch.float64 and moved["fc1.weight"].requires_grad
    assert moved["bn.num_batches_tracked"].dtype == torch.int64
    assert torch.equal(moved["fc1.weight"].float(), params["fc1.weight"])
    with pytest.raises(TypeError, match=r"tree\['w'\] must be Tensor"):
        tree_to({"w": 1.0})


# --- bad input -----------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors():
    net, params, buffers = _pair()
    x = torch.randn(4, CFG.in_features)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 13\); got \(4, 12\)"):
        net(torch.randn(4, 12))
    with pytest.raises(ValueError, match="x must have 2 dims"):
        net(torch.randn(13))
    with pytest.raises(TypeError, match="x must have a floating-point dtype"):
        net(torch.ones(4, 13, dtype=torch.int64))
    with pytest.raises(TypeError, match="x, weight must have the same dtype"):
        net(x.double())
    with pytest.raises(TypeError, match="training must be bool"):
        net_forward(params, buffers, x, CFG, training=1)
    with pytest.raises(ValueError, match=r"params is missing \['fc2.bias'\]"):
        net_forward({k: v for k, v in params.items() if k != "fc2.bias"}, buffers, x, CFG, training=True)
    with pytest.raises(ValueError, match=r"fc1.weight must have shape \(17, 13\)"):
        net_forward(params | {"fc1.weight": torch.zeros(3, 3)}, buffers, x, CFG, training=True)
    with pytest.raises(ValueError, match="x, weight must be on the same device"):
        net_forward(params, buffers, x.to("meta"), CFG, training=False)
    with pytest.raises(ValueError, match=r"p_drop must be a number in \[0.0, 1.0\]"):
        NetConfig(p_drop=1.5)
    with pytest.raises(TypeError, match="hidden must be an int"):
        NetConfig(hidden=2.0)
    with pytest.raises(TypeError, match="cfg must be NetConfig"):
        Net({"hidden": 3})
    with pytest.raises(TypeError, match="cfg must be NetConfig"):
        init_params("small")
    with pytest.raises(ValueError, match="seed must be an int in"):
        init_params(CFG, seed=-1)
    with pytest.raises(TypeError, match="pass_training must be bool"):
        FunctionalNet(CFG, pass_training="no")
    with pytest.raises(TypeError, match="params must be dict"):
        net_forward(list(params.values()), buffers, x, CFG, training=True)


# --- per-sample gradients ------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 17])
def test_per_sample_vmap_equals_loop_and_sums_to_batch_gradient(batch):
    torch.manual_seed(0)
    net = Net(CFG).double().eval()
    x = torch.randn(batch, CFG.in_features, dtype=torch.float64)
    y = torch.randint(0, CFG.classes, (batch,))
    loop = per_sample_grads_loop(net, x, y)
    fast = per_sample_grads_vmap(net, x, y)
    assert loop.keys() == fast.keys() == {n for n, _ in net.named_parameters()}
    for name, p in net.named_parameters():
        assert fast[name].shape == (batch, *p.shape)
        torch.testing.assert_close(fast[name], loop[name], **TOL[torch.float64])
    full = torch.autograd.grad(F.cross_entropy(net(x), y, reduction="sum"), list(net.parameters()))
    for (name, _), g in zip(net.named_parameters(), full):
        torch.testing.assert_close(fast[name].sum(0), g, **TOL[torch.float64])


def test_per_sample_bad_inputs():
    net = Net(CFG)
    x, y = torch.randn(3, CFG.in_features), torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="model must be in eval mode"):
        per_sample_grads_vmap(net.train(), x, y)
    net.eval()
    with pytest.raises(ValueError, match="y has N=2"):
        per_sample_grads_loop(net, x, y[:2])
    with pytest.raises(TypeError, match=r"y must have dtype in \(torch.int64\)"):
        per_sample_grads_vmap(net, x, y.float())
    frozen = Net(CFG).eval().requires_grad_(False)
    with pytest.raises(ValueError, match="at least one parameter with requires_grad=True"):
        per_sample_grads_loop(frozen, x, y)
    with pytest.raises(ValueError, match="x, y, model must be on the same device"):
        per_sample_grads_vmap(net, x.to("meta"), y.to("meta"))


# --- timing plumbing (the numbers themselves are for benchmarks/) ---------------------------


def test_time_conv_overhead_rows_and_plot():
    rows = time_conv_overhead([(1, 2, 4), (2, 3, 5)], repeats=3, min_sample_s=0.001)
    assert [(r.batch, r.channels, r.size) for r in rows] == [(1, 2, 4), (2, 3, 5)]
    assert rows[1].flops == 2 * 2 * 3 * 3 * 9 * 25
    assert all(r.module_us > 0 and r.functional_us > 0 for r in rows)
    assert rows[0].ratio == pytest.approx(rows[0].module_us / rows[0].functional_us)
    fig = plot_conv_overhead(rows)
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match=r"each size must be a \(batch, channels, height\) triple"):
        time_conv_overhead([(1, 2)])
    with pytest.raises(ValueError, match="channels must be an int in"):
        time_conv_overhead([(1, 0, 4)])
    with pytest.raises(ValueError, match="rows must hold at least one"):
        plot_conv_overhead([])
    row = ConvOverhead(1, 1, 1, 3.0, 2.0, (2.5, 3.5), (1.9, 2.1))
    assert row.overhead_us == 1.0 and row.noise_us == 1.0
    assert all(r.module_iqr_us[0] <= r.module_us <= r.module_iqr_us[1] for r in rows)


def test_harnesses_live_in_experiment_not_in_the_package():
    import course_lib.functional as package

    for name in ("ConvOverhead", "time_conv_overhead", "plot_conv_overhead", "PerSampleTiming", "time_per_sample"):
        assert not hasattr(package, name) or name not in package.__all__


def test_time_per_sample_reports_both():
    t = time_per_sample(batch=4, repeats=1)
    assert t.batch == 4 and t.loop_ms > 0 and t.vmap_ms > 0
    assert t.speedup == pytest.approx(t.loop_ms / t.vmap_ms)
    with pytest.raises(ValueError, match="batch must be an int in"):
        time_per_sample(batch=0)


# --- widget --------------------------------------------------------------------------------


def test_view_caption_reflects_mode_and_form():
    captions = {(m, f): dropout_bn_view(m, f).caption for m in MODES for f in FORMS}
    assert "F.dropout received training=True" in captions["train", "module"]
    assert "F.batch_norm received training=True" in captions["train", "module"]
    assert "num_batches_tracked=1" in captions["train", "functional"]
    assert "F.dropout received training=False: 0 of" in captions["eval", "module"]
    assert "max |Δ|=0.0000" in captions["eval", "functional"]
    # the pitfall: the mode toggle changes nothing when the mode is not passed
    naive_train, naive_eval = captions["train", FORMS[2]], captions["eval", FORMS[2]]
    assert naive_train.splitlines()[1:] == naive_eval.splitlines()[1:]
    assert "F.dropout received training=True" in naive_eval
    # module and functional spellings agree line for line
    for mode in MODES:
        assert captions[mode, "module"].splitlines()[1:] == captions[mode, "functional"].splitlines()[1:]
    view = dropout_bn_view("train", "module", seed=1)
    assert len(view.figure.axes) == 2 and view.caption != captions["train", "module"]
    with pytest.raises(ValueError, match="mode must be one of 'train', 'eval'; got 'test'"):
        dropout_bn_view("test")
    with pytest.raises(ValueError, match="form must be one of"):
        dropout_bn_view("train", "jax")


def test_widget_rerenders_headlessly():
    w = dropout_bn_widget()
    caption, image = w.caption.value, w.image.value
    w.controls["mode"].value = "eval"
    assert w.caption.value != caption and w.image.value != image
    assert "training=False" in w.caption.value
    w.controls["form"].value = FORMS[2]
    assert "F.dropout received training=True" in w.caption.value
    assert w.renders == 3
    # issue 14: the long option is shown whole and explained on hover
    assert w.controls["form"].style.button_width == "auto"
    assert len(w.controls["form"].tooltips) == len(FORMS) and "never passed" in w.controls["form"].tooltips[2]


def test_state_is_pure_data():
    s = dropout_bn_state("train", "module")
    assert s.dropout_training and s.bn_training and s.num_batches_tracked == 1 and s.moved > 0
    assert s.mask.shape == (12, 24) and 0 < s.dropped < s.live == int((s.mask != 0.5).sum())
    e = dropout_bn_state("eval", FORMS[2])
    assert e.dropout_training and not e.bn_training and e.moved == 0 and e.num_batches_tracked == 0
    assert e.caption == dropout_bn_view("eval", FORMS[2]).caption


def test_record_calls_rejects_non_callables():
    with pytest.raises(TypeError, match="fn must be a function of no arguments"):
        record_calls(3)


# --- exercises -----------------------------------------------------------------------------


def test_exercises_accept_correct_alternatives():
    def dropout(x, keep, p):
        return torch.where(keep.bool(), x / (1 - p), torch.zeros_like(x)) if p < 1 else x * 0

    def bn(x, running_mean, running_var, weight, bias, momentum, eps):
        mean, var_b = x.mean(0), x.var(0, unbiased=False)
        y = (x - mean) / torch.sqrt(var_b + eps) * weight + bias
        return (y, (1 - momentum) * running_mean + momentum * mean,
                (1 - momentum) * running_var + momentum * x.var(0, unbiased=True))

    def psg(w, x, y):  # with torch.func instead of the closed form
        return torch.func.vmap(torch.func.grad(lambda w_, xi, yi: 0.5 * (xi @ w_ - yi) ** 2),
                               in_dims=(None, 0, 0))(w, x, y)

    for exercise, fn in ((ex.inverted_dropout, dropout), (ex.batch_norm_train, bn), (ex.per_sample_linear_grads, psg)):
        result = exercise.check(fn, quiet=True)
        assert result.passed, result.message
    assert len(ex.EXERCISES) >= 3


@pytest.mark.parametrize(
    "exercise, wrong, shown",
    [
        (ex.inverted_dropout, lambda x, keep, p: x * keep, "p = 0.5"),
        (ex.inverted_dropout, lambda x, keep, p: x * keep / (1 - p), "p = 1.0"),
        (ex.batch_norm_train, lambda x, running_mean, running_var, weight, bias, momentum, eps: (
            F.batch_norm(x, None, None, weight, bias, True, momentum, eps), running_mean, running_var),
         "momentum = 0.1"),
        (ex.batch_norm_train, lambda x, running_mean, running_var, weight, bias, momentum, eps: (
            F.batch_norm(x, None, None, weight, bias, True, momentum, eps),
            (1 - momentum) * running_mean + momentum * x.mean(0),
            (1 - momentum) * running_var + momentum * x.var(0, unbiased=False)), "x = tensor"),
        (ex.per_sample_linear_grads, lambda w, x, y: ((x @ w - y)[:, None] * x).sum(0, keepdim=True), "w = tensor"),
        (ex.per_sample_linear_grads, lambda w, x, y: (x @ w - y)[:, None] * w, "x = tensor"),
    ],
)
def test_exercises_reject_wrong_functions_and_name_the_input(exercise, wrong, shown):
    result = exercise.check(wrong, quiet=True)
    assert not result.passed and result.attempted and result.failing_case is not None
    assert shown in result.message and "expected:" in result.message


def test_per_sample_gradients_of_an_empty_batch_are_empty():
    """N = 0 gives (0, *shape) from both (the loop had nothing to stack; vmap refuses a size-0 dim)."""
    net = Net(CFG).eval()
    x, y = torch.zeros(0, CFG.in_features), torch.zeros(0, dtype=torch.int64)
    for fn in (per_sample_grads_loop, per_sample_grads_vmap):
        grads = fn(net, x, y)
        assert {n: tuple(g.shape) for n, g in grads.items()} == {n: (0, *p.shape) for n, p in net.named_parameters()}


def test_per_sample_exercise_accepts_vmap_and_its_reference():
    assert ex.per_sample_grads_ex.check(per_sample_grads_vmap, quiet=True).passed
    assert ex.per_sample_grads_ex.check(ex.per_sample_grads_ex.reference, quiet=True).passed


def test_per_sample_exercise_truly_rejects_python_loops():
    """Issue 15: the check must reject a loop, not just claim to. Three loops, all rejected."""
    def loop_of_forwards(model, x, y):  # the library's oracle: N forward/backward passes
        return per_sample_grads_loop(model, x, y)

    def one_forward_loop_of_backwards(model, x, y):  # one model call, N autograd passes
        losses = F.cross_entropy(model(x), y, reduction="none")
        rows = [torch.autograd.grad(losses[i], list(model.parameters()), retain_graph=True) for i in range(len(y))]
        return {n: torch.stack([r[k] for r in rows]) for k, (n, _) in enumerate(model.named_parameters())}

    def loop_of_func_grads(model, x, y):  # torch.func.grad, but called once per sample
        params = {n: p.detach() for n, p in model.named_parameters()}
        buffers = dict(model.named_buffers())
        def loss(theta, xi, yi):
            return F.cross_entropy(torch.func.functional_call(model, (theta, buffers), (xi[None],)), yi[None])
        rows = [torch.func.grad(loss)(params, x[i], y[i]) for i in range(len(y))]
        return {n: torch.stack([r[n] for r in rows]) for n in params}

    for loop in (loop_of_forwards, one_forward_loop_of_backwards, loop_of_func_grads):
        result = ex.per_sample_grads_ex.check(loop, quiet=True)
        assert not result.passed and "that is a Python loop" in result.message, loop.__name__
    assert torch.autograd.grad.__name__ == "grad"  # the counting wrappers were removed again


def test_python_calls_counts_the_modules_fixed_work():
    from course_lib.functional.experiment import python_calls

    extra = set()
    for c, h in ((2, 4), (16, 16)):
        conv, x = torch.nn.Conv2d(c, c, 3, padding=1), torch.randn(1, c, h, h)
        with torch.no_grad():
            extra.add(python_calls(lambda conv=conv, x=x: conv(x))
                      - python_calls(lambda conv=conv, x=x: F.conv2d(x, conv.weight, conv.bias, padding=1)))
    assert len(extra) == 1 and extra.pop() > 0  # the same extra Python frames at every size
    assert python_calls(lambda: None) == 1  # the lambda itself
    with pytest.raises(TypeError, match="fn must be a function of no arguments"):
        python_calls(3)
