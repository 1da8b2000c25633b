"""dwd_fast: fast post-processing and training targets for the Deep Watershed Detector.

Public API (everything else is private):

- :func:`label`, :func:`region_stats` — connected components and their statistics
- :func:`watershed` — marker watershed (canonical, or exactly scikit-image's)
- :func:`decode`, :class:`Detections` — the DWD decoder
- :func:`class_size_table`, :class:`ClassSizeTable` — box sizes cached per class (``decode(size_mode="class")``)
- :func:`encode`, :class:`Targets` — the DWD training targets (energy, class and size maps)
- :mod:`dwd_fast.compat` — exact drop-ins for the original DWD functions
- :mod:`dwd_fast.data` — the reference page of the benchmarks, engraved music pages, simulated network outputs
- :func:`evaluate`, :func:`write_detections`, :func:`read_detections` — COCO / DeepScores detection scores and files
- :func:`info` — what was built and what is usable
- :func:`set_num_threads`, :func:`get_num_threads` — the CPU threads used (a batch's pages, a page's work)
"""

from . import compat, data
from ._info import info
from .class_sizes import ClassSizeTable, class_size_table
from .decode import Detections, decode
from .encode import Targets, encode
from .metrics import EvaluationResult, evaluate, read_detections, write_detections
from .label import label
from .peaks import peak_local_max
from .region_stats import RegionStats, region_stats
from ._threads import get_num_threads, set_num_threads
from .watershed import watershed

__version__ = "0.1.0"

__all__ = ["label", "peak_local_max", "region_stats", "RegionStats", "watershed", "decode", "Detections",
           "encode", "Targets", "class_size_table", "ClassSizeTable", "compat", "data", "info",
           "set_num_threads", "get_num_threads", "__version__",
           "evaluate", "EvaluationResult", "write_detections", "read_detections"]
