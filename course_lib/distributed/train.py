"""The training script: ``python -m course_lib.distributed.train`` or ``torchrun ... -m course_lib.distributed.train``.

A separate, export-free module so that running it as ``__main__`` does not define the
library's classes a second time; everything lives in :mod:`course_lib.distributed.training`.

    python -m course_lib.distributed.train --nproc 2 --ddp simple     # 2 local processes
    torchrun --nproc-per-node 2 -m course_lib.distributed.train       # the same under torchrun
"""

from course_lib.distributed.training import main

if __name__ == "__main__":
    main()
