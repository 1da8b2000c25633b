"""The reference pipelines live in the package (``dwd_fast._bench.references``) so that ``dwd-fast bench``
runs them from an installed package; re-exported here for the pytest-benchmark suites."""

from dwd_fast._bench.references import *  # noqa: F401,F403
