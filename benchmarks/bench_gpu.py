"""GPU benchmarks of decode (cut-off and peak seeds), encode and watershed: CUDA-event timing (median), batch
throughput for B = 1, 8, 32 (watershed: one page per call).

Run on a machine with a GPU: ``python benchmarks/bench_gpu.py [--library torch|cupy] [--objects 250]``,
or through pytest (``pytest benchmarks/bench_gpu.py -s``); skips without a usable GPU. No figure from
this file has been measured yet: no machine of this project has a GPU.
"""

import argparse
import sys

import pytest

from dwd_fast._arrays import cuda_unusable_reason
from dwd_fast._bench_gpu import bench_gpu, format_results


@pytest.mark.cuda
@pytest.mark.skipif(cuda_unusable_reason() is not None, reason="needs a usable CUDA GPU")
def test_bench_gpu():
    res = bench_gpu(batch_sizes=(1, 8, 32))
    print("\n" + format_results(res))
    assert all(r["ms"] > 0 for r in res)
    assert {r["op"] for r in res} == {"decode", "decode-peaks", "encode", "watershed"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--library", default="torch", choices=["torch", "cupy"])
    ap.add_argument("--objects", type=int, default=250)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    reason = cuda_unusable_reason()
    if reason is not None:
        print(f"bench_gpu: skipped: {reason}")
        return 0
    print(format_results(bench_gpu(tuple(args.batch), args.objects, library=args.library, repeats=args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
