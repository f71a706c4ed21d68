"""Where a rank trains: its process group, device, autocast and memory format, in one place.

A run starts several ranks under `torchrun` (its `RANK` / `WORLD_SIZE` environment) or as a
multi-task Slurm job through submitit (`TorchDistributedEnvironment`: MASTER_ADDR is the job's
first node). `RankContext` is every device-dependent decision of a rank: the CUDA device is set
before NCCL starts, bf16 is refused on a GPU without it, and the collectives the loop needs (a
loss mean that also carries the ranks' stop requests, summed evaluation counts, rank 0's
buffers, the ranks' hosts) live here.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from typing import Any

import submitit
import torch
import torch.distributed as dist
from torch import nn

from experiments.recipe import Recipe, compute_dtype
from experiments.train import cuda
from roadmap.errors import UserError

# What gloo and NCCL say when another rank's process or its node has gone (torch 2.4-2.14).
PEER_LOST_MARKERS = (
    "connection reset by peer",
    "connection closed by peer",
    "connection refused",
    "socket timeout",
    "remote process exited",
    "communicator was aborted",
)


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
    """(rank, world size, local rank); starts torch.distributed under torchrun or submitit.

    On CUDA the rank's device is made current before the process group starts, so that NCCL
    binds each rank to its own GPU (and not every rank to GPU 0).
    """
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
    local = int(os.environ.get("LOCAL_RANK", local))
    if torch.cuda.is_available():
        device = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    return dist.get_rank(), world, local


@dataclass
class RankContext:
    """One rank of a run: rank, world size, device, autocast dtype and memory format."""

    rank: int
    world: int
    device: torch.device
    amp_dtype: torch.dtype
    channels_last: bool
    owns_group: bool  # this context started the process group (and ends it)

    @classmethod
    def start(cls, recipe: Recipe, threads_share: int = 0) -> RankContext:
        """Join (or start) the run's process group, set its torch threads, choose its device.

        The threads are `recipe.torch_threads(threads_share)`: the one place that sets them.
        """
        owns = dist.is_available() and not dist.is_initialized()
        rank, world, local = init_distributed()
        if threads := recipe.torch_threads(threads_share):
            torch.set_num_threads(threads)
        if not torch.cuda.is_available():
            cpu = torch.device("cpu")
            fp32 = getattr(torch, compute_dtype(recipe.amp_dtype, cpu.type))
            return cls(rank, world, cpu, fp32, recipe.channels_last, owns and world > 1)
        device = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(device)
        cuda.configure(device)  # cudnn.benchmark and TF32, as the benchmark measures
        amp = getattr(torch, compute_dtype(recipe.amp_dtype, device.type))
        # Before Ampere bf16 is only emulated (slowly): refused, as a GPU without it.
        if amp == torch.bfloat16 and not torch.cuda.is_bf16_supported(False):
            raise UserError(
                f"recipe.amp_dtype=bfloat16: {torch.cuda.get_device_name(device)} has no "
                "bfloat16 units; use --set recipe.amp_dtype=float16 (with a gradient scaler)"
            )
        return cls(rank, world, device, amp, recipe.channels_last, owns and world > 1)

    @property
    def main(self) -> bool:
        """Whether this is rank 0 (the one that writes records and checkpoints)."""
        return self.rank == 0

    def to_device(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """A batch on this rank's device, images in the model's memory format."""
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def autocast(self) -> torch.autocast:
        """bf16 (or fp16) autocast on CUDA; fp32, nothing, on the CPU."""
        enabled = self.amp_dtype != torch.float32
        return torch.autocast(self.device.type, self.amp_dtype, enabled=enabled)

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model as this rank trains it: DistributedDataParallel over several ranks."""
        if self.world == 1:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def mean_loss_and_any_stop(self, value: float, stop: bool) -> tuple[float, bool]:
        """`value` averaged over ranks (non-finite if it is on any), and whether any rank stops.

        One all-reduce per micro-batch: every rank logs the same loss, fails on the same
        non-finite one and stops after the same optimizer step.
        """
        if self.world == 1:
            return value, stop
        both = torch.tensor([value, float(stop)], dtype=torch.float64, device=self.device)
        dist.all_reduce(both)
        total, stops = both.tolist()
        return total / self.world, stops > 0

    def sum(self, totals: torch.Tensor) -> torch.Tensor:
        """`totals` (on this device) summed over ranks, in place."""
        if self.world > 1:
            dist.all_reduce(totals)
        return totals

    def share_buffers(self, model: nn.Module) -> None:
        """Give every rank rank 0's buffers (BatchNorm statistics), the ones checkpointed."""
        if self.world > 1:
            for buffer in model.buffers():
                dist.broadcast(buffer, 0)

    def from_main(self, value: Any) -> Any:
        """Rank 0's `value` on every rank (a picklable object, broadcast)."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def hosts(self) -> list[str]:
        """The host name of every rank, in rank order."""
        names: list[str | None] = [None] * self.world
        if self.world == 1:
            return [socket.gethostname()]
        dist.all_gather_object(names, socket.gethostname())
        return [str(n) for n in names]

    def close(self) -> None:
        """End the process group if this context started it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def peer_lost(err: BaseException) -> bool:
    """Whether `err` says that another rank's process or node has gone (not this rank's fault)."""
    if isinstance(err, getattr(dist, "DistNetworkError", ())):
        return True
    text = str(err).lower()
    return any(marker in text for marker in PEER_LOST_MARKERS)
