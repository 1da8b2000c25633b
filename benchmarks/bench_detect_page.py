"""One full page through `dwd_fast.torch.infer` on the CPU: network time (wall and CPU), decode time, peak RSS.

    python benchmarks/bench_detect_page.py THREADS [TILE] [PAGE.png]

TILE: ``default`` or ROWSxCOLUMNS. Without PAGE, an engraved page (2668 x 1894, Verovio) is made first (in a
child process, so that its memory does not count). The model: the default UNet (widths 8..128), 60
classes, 20 levels, random weights (the network's cost does not depend on them; the reduced outputs do a
little). Prints one JSON line.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    tile = sys.argv[2] if len(sys.argv) > 2 else "default"
    path = sys.argv[3] if len(sys.argv) > 3 else None
    if path is None:
        path = os.path.join(tempfile.gettempdir(), "dwd_fast_bench_page.png")
        if not os.path.exists(path):
            subprocess.run([sys.executable, "-c", "from dwd_fast.data import engraved_page; from PIL import Image; "
                            f"Image.fromarray(engraved_page('random', seed=0).image).save({path!r})"], check=True)
    import torch
    from PIL import Image

    import dwd_fast
    from dwd_fast.torch import DeepWatershedDetector
    from dwd_fast.torch.infer import decode_outputs, predict_outputs

    torch.set_num_threads(threads)
    dwd_fast.set_num_threads(threads)
    torch.manual_seed(0)
    m = DeepWatershedDetector.from_config({"backbone": {"name": "unet"}, "num_classes": 60, "levels": 20}).eval()
    img = np.asarray(Image.open(path).convert("L"))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kw = {} if tile == "default" else {"tile": tuple(int(v) for v in tile.split("x"))}
    c0, t0 = time.process_time(), time.perf_counter()
    out = predict_outputs(m, img, **kw)
    t1, c1 = time.perf_counter(), time.process_time()
    det = decode_outputs(out, min_size=m.decoder.min_size)
    t2 = time.perf_counter()
    print(json.dumps({
        "threads": threads, "tile": tile, "page": list(img.shape), "network_s": round(t1 - t0, 2),
        "network_cpu_s": round(c1 - c0, 2), "decode_s": round(t2 - t1, 3),
        "peak_rss_MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_before_page_MB": round(before), "reduced_outputs_MB": round(out.nbytes / 2**20, 1),
        "pieces": None if out.piece_pixels is None else int(out.piece_pixels.size), "detections": len(det),
        "load_average": [round(v, 1) for v in os.getloadavg()]}))


if __name__ == "__main__":
    main()
