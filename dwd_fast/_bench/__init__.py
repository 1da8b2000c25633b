"""What ``dwd-fast bench`` runs: the reference pipelines dwd_fast is measured against
(:mod:`.references`, :mod:`.references_encode`) and the runner (:mod:`.runner`). Private: the
pytest-benchmark suites in ``benchmarks/`` import the references from here."""
