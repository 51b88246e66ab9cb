"""course_lib: tested implementations behind the course "How modern deep-learning systems work".

Importing any part of ``course_lib`` first decides where code runs (:mod:`course_lib.runtime`):
the Triton interpreter is switched on here, before any kernel module can be imported, when no
GPU is present and the user has not set ``TRITON_INTERPRET`` themselves.

Subpackages are imported on demand (``from course_lib.attention import flash_attention``), so
``import course_lib`` stays cheap. The public API is the registry of :mod:`course_lib.api`,
listed by ``python -m course_lib api``.
"""

from course_lib.runtime import configure_triton

configure_triton()

__version__ = "0.1.0"
