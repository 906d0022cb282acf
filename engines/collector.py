"""Python's full garbage collection on a timer instead of by allocation count, for the long-running
processes with big heaps: the gateway and the actor hosts.

A full collection rescans every object a process holds. An actor host holds many small long-lived
ones (a 3,000-item inventory is some 15,000) and the gateway a quarter of a million (Ray, FastMCP);
under load, allocation churn set one off every few seconds and paused the process 120-250 ms each
time: measured, it was the p99 of ``bench/bench_actors.py``. Refcounting frees nearly everything
without it and young objects are still collected as usual; only reference cycles wait for the timer.
"""

from __future__ import annotations

import gc
import threading
import time

FULL_GC_S = 300.0
_started = threading.Lock()
_running = False


def collect_on_schedule(interval_s: float = FULL_GC_S) -> None:
    """From now on this process runs its full collection every ``interval_s`` (once per process)."""
    global _running
    with _started:
        if _running:
            return
        _running = True
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 2**31 - 1)  # never by count
    threading.Thread(target=_collect_every, args=(interval_s,), name="full-gc", daemon=True).start()


def _collect_every(interval_s: float) -> None:
    while True:
        time.sleep(interval_s)
        gc.collect()
