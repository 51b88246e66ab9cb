"""course_lib.contrastive: augmentations, SimCLR on digits, the losses without negatives
(Barlow Twins, SimSiam's negative cosine) against their papers' pseudo-code, and the harness."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.contrastive import (
    DigitEncoder,
    SimCLR,
    SimCLRConfig,
    augment_images,
    barlow_twins,
    negative_cosine,
    nt_xent,
    train_simclr,
)
from course_lib.contrastive.augment import _resample
from course_lib.contrastive.experiment import (
    collapse_run,
    digits_split,
    label_efficiency,
    labelled_subset,
    probe_accuracy,
    train_supervised,
)

TINY = SimCLRConfig(channels=4, features=8, projection=4, batch=32, epochs=6, lr=1e-2)


@pytest.fixture(scope="module")
def split():
    return digits_split()


# --- augmentations -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [0, 1, 17])
def test_augment_keeps_shape_dtype_and_is_seeded(dtype, n):
    images = torch.rand(n, 2, 8, 7, dtype=dtype)
    a = augment_images(images, torch.Generator().manual_seed(3))
    b = augment_images(images, torch.Generator().manual_seed(3))
    assert a.shape == images.shape and a.dtype == dtype
    assert torch.equal(a, b)
    if n:
        assert not torch.equal(a, augment_images(images, torch.Generator().manual_seed(4)))


def test_augment_without_randomness_is_the_identity():
    images = torch.rand(5, 1, 8, 8, dtype=torch.float64)
    out = augment_images(images, max_shift=0.0, scale_jitter=0.0, noise_std=0.0)
    torch.testing.assert_close(out, images)


@pytest.mark.parametrize("dx, dy", [(1, 0), (0, -1), (2, 1), (-1, -2)])
def test_whole_pixel_shift_is_pad_and_crop(dx, dy):
    # torchvision's RandomCrop(size, padding=k) at one offset: pad by k with zeros, crop.
    images = torch.rand(3, 1, 8, 9, dtype=torch.float64)
    out = _resample(images, torch.ones(3, dtype=torch.float64), torch.tensor([[dx, dy]] * 3, dtype=torch.float64))
    k = 2
    padded = F.pad(images, (k, k, k, k))
    expected = padded[:, :, k + dy:k + dy + 8, k + dx:k + dx + 9]
    torch.testing.assert_close(out, expected)


def test_augment_noise_has_the_requested_std():
    out = augment_images(torch.zeros(64, 1, 8, 8), torch.Generator().manual_seed(0), noise_std=0.5)
    assert abs(out.std().item() - 0.5) < 0.02


def test_augment_bad_arguments():
    with pytest.raises(ValueError, match="images must have 4 dims"):
        augment_images(torch.rand(1, 8, 8))
    with pytest.raises(TypeError, match="images must have a floating-point dtype"):
        augment_images(torch.zeros(1, 1, 8, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match="max_shift"):
        augment_images(torch.rand(1, 1, 8, 8), max_shift=-1.0)
    with pytest.raises(ValueError, match="scale_jitter"):
        augment_images(torch.rand(1, 1, 8, 8), scale_jitter=0.95)
    with pytest.raises(TypeError, match="noise_std must be a real number"):
        augment_images(torch.rand(1, 1, 8, 8), noise_std="0.1")


# --- losses without negatives ---------------------------------------------------------------


def barlow_twins_pseudocode(z_a, z_b, lambd):
    """Zbontar et al. (2021), Algorithm 1, with the official code's BatchNorm1d(affine=False)."""
    n, d = z_a.shape
    z_a_norm = F.batch_norm(z_a, None, None, training=True, eps=1e-5)
    z_b_norm = F.batch_norm(z_b, None, None, training=True, eps=1e-5)
    c = torch.mm(z_a_norm.T, z_b_norm) / n
    c_diff = (c - torch.eye(d, dtype=c.dtype)).pow(2)
    off = ~torch.eye(d, dtype=torch.bool)
    c_diff = torch.where(off, c_diff * lambd, c_diff)
    return c_diff.sum()


@pytest.mark.parametrize("n, d", [(2, 1), (17, 5), (97, 13)])
def test_barlow_twins_matches_the_papers_pseudocode_forward_and_backward(n, d):
    gen = torch.Generator().manual_seed(n)
    z1 = torch.randn(d, n, dtype=torch.float64, generator=gen).T.requires_grad_()  # non-contiguous
    z2 = (z1.detach() + torch.randn(n, d, dtype=torch.float64, generator=gen)).requires_grad_()
    ours, ref = barlow_twins(z1, z2, lambd=0.3), barlow_twins_pseudocode(z1, z2, 0.3)
    torch.testing.assert_close(ours, ref)
    for g, e in zip(torch.autograd.grad(ours, (z1, z2)), torch.autograd.grad(ref, (z1, z2))):
        torch.testing.assert_close(g, e)
    assert torch.autograd.gradcheck(lambda a, b: barlow_twins(a, b, 0.3), (z1, z2))


def test_barlow_twins_values_at_collapse_and_at_perfect_decorrelation():
    constant = torch.ones(16, 6, dtype=torch.float64)
    assert barlow_twins(constant, constant).item() == pytest.approx(6.0)  # C = 0: pays every (1 - 0)²
    # Identical, whitened views: C = I (up to eps), so the loss is ~0.
    q, _ = torch.linalg.qr(torch.randn(64, 4, dtype=torch.float64))
    z = (q - q.mean(0)) / (q - q.mean(0)).std(0, unbiased=False)
    assert barlow_twins(z, z, eps=1e-12).item() < 0.05


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 12), d=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_barlow_twins_is_symmetric_in_the_views_and_invariant_to_batch_order(n, d, seed):
    # C(z2, z1) = C(z1, z2)ᵀ has the same diagonal and the same off-diagonal squares; the batch
    # mean and variance, and the sum over rows in C, do not depend on the order of the rows.
    gen = torch.Generator().manual_seed(seed)
    z1, z2 = torch.randn(2, n, d, dtype=torch.float64, generator=gen)
    perm = torch.randperm(n, generator=gen)
    loss = barlow_twins(z1, z2)
    torch.testing.assert_close(barlow_twins(z2, z1), loss)
    torch.testing.assert_close(barlow_twins(z1[perm], z2[perm]), loss)
    assert loss.item() >= 0


def test_negative_cosine_matches_simsiam_pseudocode_and_stops_the_gradient():
    p = torch.randn(17, 5, dtype=torch.float64, requires_grad=True)
    z = torch.randn(17, 5, dtype=torch.float64, requires_grad=True)
    ref = -F.cosine_similarity(p, z.detach(), dim=-1).mean()  # SimSiam's Algorithm 1, D(p, z)
    loss = negative_cosine(p, z)
    torch.testing.assert_close(loss, ref)
    loss.backward()
    assert z.grad is None and p.grad is not None
    both = negative_cosine(p, z, stop_gradient=False)
    assert torch.autograd.grad(both, z)[0].abs().sum() > 0
    constant = torch.ones(8, 3)
    assert negative_cosine(constant, constant).item() == pytest.approx(-1.0)  # collapse is the minimum


def test_losses_without_negatives_bad_arguments():
    with pytest.raises(ValueError, match="at least 2 rows"):
        barlow_twins(torch.randn(1, 3), torch.randn(1, 3))
    with pytest.raises(ValueError, match="lambd"):
        barlow_twins(torch.randn(4, 3), torch.randn(4, 3), lambd=-1.0)
    with pytest.raises(ValueError, match="eps"):
        barlow_twins(torch.randn(4, 3), torch.randn(4, 3), eps=0.0)
    with pytest.raises(ValueError, match="z has"):
        negative_cosine(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="D >= 1"):
        barlow_twins(torch.zeros(4, 0), torch.zeros(4, 0))


def test_losses_without_negatives_at_the_edges_follow_their_references():
    # The references: SimSiam's D is -F.cosine_similarity(p, z).mean(); Barlow Twins standardises
    # with BatchNorm1d(affine=False) statistics. Empty batches, zero vectors, NaN and inf as they do.
    z = torch.randn(4, 3)
    bad = z.clone()
    for value in (float("nan"), float("inf"), float("-inf")):
        bad[0, 0] = value
        assert torch.isnan(barlow_twins(bad, z))  # a non-finite entry poisons its column's statistics
        assert torch.isnan(negative_cosine(bad, z))
        assert torch.isnan(-F.cosine_similarity(bad, z, dim=-1).mean())
    empty = torch.zeros(0, 3)
    assert torch.isnan(negative_cosine(empty, empty)) and torch.isnan(-F.cosine_similarity(empty, empty).mean())
    zero, other = torch.zeros(2, 3), torch.randn(2, 3)
    assert negative_cosine(zero, other).item() == -F.cosine_similarity(zero, other, dim=-1).mean().item() == 0.0


# --- SimCLR ---------------------------------------------------------------------------------


def test_encoder_and_model_shapes_and_errors():
    model = SimCLR(TINY)
    x = torch.rand(5, 1, 8, 8)
    assert model.encoder(x).shape == (5, 8) and model(x).shape == (5, 4)
    with pytest.raises(ValueError, match=r"images must have shape \(N, 1, 8, 8\)"):
        DigitEncoder()(torch.rand(5, 1, 16, 16))
    with pytest.raises(TypeError, match="config must be SimCLRConfig"):
        SimCLR({"features": 8})  # type: ignore[arg-type]


def test_nt_xent_at_a_constant_projection_is_log_2n_minus_1():
    z = torch.ones(10, 4)
    assert nt_xent(z, z).item() == pytest.approx(math.log(19), rel=1e-6)


def test_train_simclr_reduces_the_loss_and_is_seeded(split):
    images = split.train_images[:128]
    a = train_simclr(images, TINY, seed=0)
    b = train_simclr(images, TINY, seed=0)
    assert a.losses == b.losses
    assert a.chance == pytest.approx(math.log(63))
    assert a.losses[0] == pytest.approx(a.chance, abs=0.1)  # the random net's outputs are nearly parallel
    first, last = sum(a.losses[:4]) / 4, sum(a.losses[-4:]) / 4
    assert last < first - 0.3


def test_train_simclr_bad_arguments(split):
    with pytest.raises(ValueError, match=r"images must have shape \(N, 1, 8, 8\) with N >= 2"):
        train_simclr(split.train_images[:1], TINY)
    with pytest.raises(ValueError, match="config.batch"):
        train_simclr(split.train_images[:8], SimCLRConfig(batch=1))
    with pytest.raises(ValueError, match="config.temperature"):
        train_simclr(split.train_images[:8], SimCLRConfig(temperature=0.0))
    with pytest.raises(TypeError, match="images must be Tensor"):
        train_simclr(split.train_images.numpy(), TINY)  # type: ignore[arg-type]


# --- the experiment harness -----------------------------------------------------------------


def test_digits_split_and_labelled_subset(split):
    assert len(split.train_images) + len(split.test_images) == 1797
    assert split.train_images.shape[1:] == (1, 8, 8) and 0 <= split.train_images.min() <= split.train_images.max() <= 1
    index = labelled_subset(split.train_labels, 3, seed=1)
    assert torch.equal(torch.bincount(split.train_labels[index]), torch.full((10,), 3))
    assert torch.equal(index, labelled_subset(split.train_labels, 3, seed=1))
    with pytest.raises(ValueError, match="per_class=1000 but class 0 has only"):
        labelled_subset(split.train_labels, 1000)
    with pytest.raises(ValueError, match="test_fraction"):
        digits_split(test_fraction=1.0)


def test_probe_on_pixels_reads_digits_and_beats_chance_with_one_label(split):
    assert probe_accuracy(None, split) > 0.9  # logistic regression on pixels: a strong baseline
    assert probe_accuracy(None, split, per_class=1) > 0.3  # chance is 0.1
    with pytest.raises(TypeError, match="encoder must be Module"):
        probe_accuracy("pixels", split)  # type: ignore[arg-type]


def test_supervised_baseline_and_label_efficiency_run_small(split):
    acc = train_supervised(split, 5, TINY, steps=30)
    assert 0.1 < acc <= 1.0
    with pytest.raises(ValueError, match="steps"):
        train_supervised(split, 5, TINY, steps=0)
    model = SimCLR(TINY)
    result = label_efficiency(model, split, per_class=(1, 3), supervised_steps=5)
    assert result.per_class == (1, 3) and all(len(getattr(result, k)) == 2 for k in ("simclr", "random", "pixels",
                                                                                      "supervised"))


def test_collapse_run_cosine_collapses_and_nt_xent_spreads(split):
    images = split.train_images[:256]
    cosine = collapse_run(images, "cosine", steps=25, config=TINY)
    contrast = collapse_run(images, "nt_xent", steps=25, config=TINY)
    assert len(cosine.spread) == len(cosine.losses) == 25
    assert cosine.spread[-1] < 0.01 and cosine.losses[-1] < -0.999
    assert contrast.spread[-1] > 10 * cosine.spread[-1]
    with pytest.raises(ValueError, match="loss must be one of"):
        collapse_run(images, "byol")
