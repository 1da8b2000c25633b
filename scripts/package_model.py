"""Package a `dwd-fast train` run's final checkpoint as a model file: weights, configuration, class names and
class-size table (no optimizer state), with how it was made in its ``meta`` (recipe, corpus, seed, steps, wall
time of the training, machine).

    python scripts/package_model.py RUN OUT.pt --recipe "..." --corpus "..."
"""

import argparse
import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def machine():
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu or platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("out")
    ap.add_argument("--checkpoint", default="last.pt", help="last.pt (default) or best.pt")
    ap.add_argument("--recipe", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--size-mode", choices=["regress", "class", "blend"],
                    help="the decoder's size mode in the packaged model (default: the run's)")
    ap.add_argument("--note", help="anything else about how it was made (e.g. what shared the machine)")
    args = ap.parse_args(argv)

    import torch

    from dwd_fast.torch import DeepWatershedDetector
    from dwd_fast.torch.train import read_run_metrics

    src = os.path.join(args.run, args.checkpoint)
    model = DeepWatershedDetector.load(src)
    if args.size_mode and args.size_mode != model.config["decoder"].get("size_mode", "regress"):
        config = dict(model.config, decoder=dict(model.config["decoder"], size_mode=args.size_mode))
        rebuilt = DeepWatershedDetector.from_config(config, class_names=model.class_names,
                                                    class_sizes=model.class_sizes)
        rebuilt.load_state_dict(model.state_dict())
        rebuilt.meta = model.meta
        model = rebuilt
    records = read_run_metrics(args.run)
    steps = [r for r in records if "loss_energy" in r]
    evals = [r for r in records if "eval" in r]
    tc = model.meta.get("train_config", {})
    wall = steps[-1]["time"] - steps[0]["time"] if len(steps) > 1 else 0.0
    meta = {
        "recipe": args.recipe, "corpus": args.corpus, "seed": tc.get("seed"), "steps": model.meta.get("step"),
        "wall_seconds": round(wall, 1), "machine": machine(), "torch": torch.__version__,
        "train_config": tc, "label_map": model.meta.get("label_map"),
        "last_eval": evals[-1]["eval"] if evals else None,
    }
    if args.note:
        meta["note"] = args.note
    model.save(args.out, **meta)
    print(json.dumps({k: v for k, v in meta.items() if k not in ("train_config", "label_map", "last_eval")}))
    print(f"{args.out}: {os.path.getsize(args.out) / 2**20:.2f} MB")


if __name__ == "__main__":
    main()
