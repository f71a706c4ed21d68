"""The distributed setup of a run: torchrun's environment, or a multi-task submitit/Slurm job."""

from __future__ import annotations

import contextlib
import os

import submitit
import torch
import torch.distributed as dist


def launch_rank() -> int:
    """The global rank the launcher gave this process (torchrun, Slurm tasks); 0 alone.

    Read before any setup, so that only rank 0 takes the run's lock and writes its records.
    """
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
        return int(os.environ.get("RANK", 0))
    if int(os.environ.get("SLURM_NTASKS", 1)) > 1:
        return int(os.environ.get("SLURM_PROCID", 0))
    return 0


def init_distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank); starts torch.distributed under torchrun or submitit."""
    local = int(os.environ.get("LOCAL_RANK", 0))
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), local
    launched = int(os.environ.get("WORLD_SIZE", 1)) > 1  # torchrun (or done by hand)
    if not launched and int(os.environ.get("SLURM_NTASKS", 1)) > 1:
        with contextlib.suppress(RuntimeError):  # not a Slurm job after all
            env = submitit.helpers.TorchDistributedEnvironment()
            env.export(set_cuda_visible_devices=False)
            local = env.local_rank
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        return 0, 1, 0
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", local))
