"""Shared test fixtures."""

import matplotlib

matplotlib.use("Agg")  # headless: tests render figures to PNG, never to a screen

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    """Close the figures a test's views opened, so hundreds of tests don't pile them up."""
    yield
    plt.close("all")
