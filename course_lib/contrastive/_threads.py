"""One intra-op thread while a tiny model trains, restored afterwards.

The chapter's models multiply matrices of a few dozen rows: splitting that work across threads
costs more in synchronisation than it saves, and on a shared, oversubscribed CPU it can be ten
times slower. (The same rule as ``course_lib.functional.timing``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(1)``; restore the previous count after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
