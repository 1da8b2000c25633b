"""A worker process that runs one call at a time, so that a crash or a hang of the call fails a test
instead of killing or blocking pytest (used by tests/test_fuzz.py).

The worker is started with the "spawn" method (a fork copies whatever locks the parent's threads —
pytest's, PyTorch's — hold at that instant, and a forked child defaults to one dwd_fast thread); calls are sent as (dotted path of the function, args, kwargs) and answered with
("ok", result as numpy) or ("err", exception type name, message).
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import warnings


class Crash(Exception):
    """The worker died during the call (segfault, abort, os._exit)."""


class Hang(Exception):
    """The call did not return within its time budget."""


def _resolve(path):
    mod, _, name = path.rpartition(".")
    return getattr(importlib.import_module(mod), name)


def _plain(x):
    """Results as picklable numpy-only structures (torch tensors to numpy)."""
    mod = type(x).__module__ or ""
    if mod.startswith("torch") and hasattr(x, "detach"):
        return x.detach().cpu().float().numpy() if str(x.dtype) == "torch.bfloat16" else x.detach().cpu().numpy()
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)) and not hasattr(x, "_fields"):
        return type(x)(_plain(v) for v in x) if isinstance(x, list) else tuple(_plain(v) for v in x)
    if hasattr(x, "_fields"):  # NamedTuple
        return type(x)(*[_plain(v) for v in x])
    if hasattr(x, "__dataclass_fields__"):
        for f in x.__dataclass_fields__:
            object.__setattr__(x, f, _plain(getattr(x, f)))  # frozen dataclasses too
        return x
    return x


def _worker(conn):
    warnings.simplefilter("ignore")
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        path, args, kwargs = msg
        try:
            out = ("ok", _plain(_resolve(path)(*args, **kwargs)))
        except BaseException as e:  # noqa: BLE001 - everything is reported to the parent
            out = ("err", type(e).__name__, str(e)[:4000])
        try:
            conn.send(out)
        except Exception as e:  # an unpicklable result
            conn.send(("err", "PicklingError", str(e)))


class Sandbox:
    """One worker process; restarted after a crash or a hang."""

    def __init__(self, timeout):
        self.timeout = timeout
        self.proc = None

    def _start(self):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.conn.send(("dwd_fast.get_num_threads", (), {}))  # warm up: imports dwd_fast
        if not self.conn.poll(120):
            raise RuntimeError("the sandbox worker did not start")
        self.conn.recv()

    def call(self, path, *args, **kwargs):
        if self.proc is None or not self.proc.is_alive():
            self._start()
        self.conn.send((path, args, kwargs))
        if not self.conn.poll(self.timeout):
            self.kill()
            raise Hang(f"{path} did not return within {self.timeout} s")
        try:
            return self.conn.recv()
        except (EOFError, ConnectionError):
            code = self.proc.exitcode if self.proc is not None else None
            self.kill()
            raise Crash(f"{path} killed the worker process (exit code {code})") from None

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.join(5)
            self.proc = None

    def close(self):
        if self.proc is not None and self.proc.is_alive():
            try:
                self.conn.send(None)
                self.proc.join(5)
            except Exception:  # noqa: BLE001
                pass
        self.kill()


# ---- helpers the fuzz tests call by name (torch modules) --------------------------------------------------

def torch_target_encoder(targets, image_size, levels=20, num_classes=None, stride=1):
    from dwd_fast.torch import TargetEncoder

    return TargetEncoder(levels, num_classes, stride=stride)(targets, image_size)


def torch_decoder(outputs, cutoff=7, min_size=4):
    from dwd_fast.torch import Decoder

    return Decoder(cutoff=cutoff, min_size=min_size)(outputs)


def torch_loss(outputs, targets):
    from dwd_fast.torch import DWDLoss

    return DWDLoss()(outputs, targets)
