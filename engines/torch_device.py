"""Where a local model runs: the GPU Ray gave this replica, else the CPU."""

from __future__ import annotations


def pick_device() -> str:
    """``cuda`` only when Ray assigned this replica a GPU and CUDA works here."""
    import ray
    import torch

    try:
        has_gpu = bool(ray.get_gpu_ids())
    except Exception:  # not inside a Ray worker (a unit test, a script)
        has_gpu = False
    return "cuda" if has_gpu and torch.cuda.is_available() else "cpu"
