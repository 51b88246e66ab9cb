"""Shared test fixtures."""

import functools
import itertools
import os

# Before anything imports torchvision (which imports triton): course_lib must switch on Triton's
# interpreter first, or no kernel can run in the test process (course_lib.runtime.triton_problem).
import course_lib  # noqa: F401  # isort: skip

import matplotlib
import torch

matplotlib.use("Agg")  # headless: tests render figures to PNG, never to a screen

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

# pytest-xdist runs one worker per core (`course.py test` uses -n 2): a worker that also spreads
# each op over every core only fights the other worker for them (tests ran several times slower).
torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))


@pytest.fixture(autouse=True)
def _close_figures():
    """Close the figures a test's views opened, so hundreds of tests don't pile them up."""
    yield
    plt.close("all")


_toy_ids = itertools.count()


@pytest.fixture
def toy():
    """A fresh throw-away export API (chapter 5): (its name, its export decorator); cleared afterwards."""
    from course_lib._export import api_export, clear

    name = f"toy_api_{next(_toy_ids)}"
    yield name, functools.partial(api_export, api_name=name)
    clear(name)
