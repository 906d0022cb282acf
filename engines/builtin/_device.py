"""Where a local model runs: the GPU Ray gave this replica, else the CPU."""

from __future__ import annotations


def pick_device() -> str:
    """``cuda`` only when Ray assigned this replica a GPU and CUDA works here.

    Outside Ray (a unit test, a script, a bench) it is the CPU, and Ray is left
    alone: ``ray.get_gpu_ids()`` would start a whole local cluster to answer.
    """
    import ray
    import torch

    has_gpu = ray.is_initialized() and bool(ray.get_gpu_ids())
    return "cuda" if has_gpu and torch.cuda.is_available() else "cpu"
