"""Data-parallel GAN training under ``torchrun`` (gloo on CPU, NCCL on GPU).

The ranks are found from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK). Gradients are averaged
with one all-reduce per model and step instead of wrapping the models in
``DistributedDataParallel``: the WGAN-GP gradient penalty differentiates the critic twice
(``autograd.grad(create_graph=True)``), which DDP's reducer does not support. The result is the same
synchronous data parallelism: every rank starts from rank 0's weights, applies the same averaged
gradients with identical optimizers, and so holds identical weights after every step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from nnunet_synth.errors import NNSynthError


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # we called init_process_group, so we also tear it down

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "cuda":
        if not torch.cuda.is_available():
            raise NNSynthError("--device cuda requested but no CUDA device is available")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name != "cpu":
        raise NNSynthError(f"unknown device {name!r} (use cpu or cuda)")
    return torch.device("cpu")


def init_distributed(device: str = "cpu") -> DistContext:
    """Join torchrun's process group when WORLD_SIZE > 1; a single-process context otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    dev = resolve_device(device, local_rank)
    if world_size <= 1:
        return DistContext(device=dev)
    owns = False
    if not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world_size)
        owns = True
    return DistContext(rank, world_size, local_rank, dev, owns)


def shutdown(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_module(module: nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if not ctx.distributed:
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def average_gradients(module: nn.Module, ctx: DistContext) -> None:
    """All-reduce the gradients of ``module`` (one flat buffer) and divide by the world size."""
    if not ctx.distributed:
        return
    params = [p for p in module.parameters() if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= ctx.world_size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def mean_across_ranks(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Element-wise mean of a small tensor over ranks (for logging)."""
    if not ctx.distributed:
        return values
    t = values.detach().to(ctx.device, torch.float64).clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return (t / ctx.world_size).cpu()


def gather_tensors(t: torch.Tensor, ctx: DistContext) -> list[torch.Tensor]:
    """Every rank's copy of an equally shaped tensor (e.g. RNG states for the checkpoint)."""
    if not ctx.distributed:
        return [t.clone()]
    src = t.to(ctx.device)
    out = [torch.empty_like(src) for _ in range(ctx.world_size)]
    dist.all_gather(out, src)
    return [o.cpu() for o in out]


def max_weight_divergence(module: nn.Module, ctx: DistContext) -> float:
    """Largest |w_rank - w_rank0| over all parameters (0.0 when ranks agree bit for bit)."""
    if not ctx.distributed:
        return 0.0
    flat = torch.cat([p.detach().reshape(-1) for p in module.parameters()]).to(ctx.device)
    ref = flat.clone()
    dist.broadcast(ref, src=0)
    diff = (flat - ref).abs().max().reshape(1).to(torch.float64)
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff.item())


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()
