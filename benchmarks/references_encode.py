"""Re-export of ``dwd_fast._bench.references_encode`` (see ``benchmarks/references.py``)."""

from dwd_fast._bench.references_encode import *  # noqa: F401,F403
