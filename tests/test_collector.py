"""The full garbage collection runs on a timer, not by allocation count (engines/collector.py), in a
process of its own so the test's own collector is left alone."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_full_collections_run_on_the_timer_and_never_by_count():
    script = textwrap.dedent("""
        import gc, threading
        from engines.collector import collect_on_schedule

        full = threading.Event()
        gc.callbacks.append(lambda phase, info: phase == "stop" and info["generation"] == 2 and full.set())
        collect_on_schedule(interval_s=3)
        collect_on_schedule(interval_s=3)  # once per process
        assert gc.get_threshold()[2] == 2**31 - 1
        assert [t.name for t in threading.enumerate()].count("full-gc") == 1
        kept = [[i] for i in range(500_000)]  # long-lived churn: by count, several full collections
        assert not full.is_set(), "a full collection ran by allocation count"
        assert full.wait(30), "no full collection from the timer"
        print("ok", len(kept))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok 500000"
