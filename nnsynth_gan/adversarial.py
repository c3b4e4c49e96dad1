"""What the mask-GAN and translator training loops share: a generator + critic/discriminator pair with Adam
optimizers, a checkpointed per-rank CPU RNG and a loss history, its snapshot and exact restore, and the
resume / save / progress loop around it.

Every random draw of a step comes from ``AdversarialTrainer.rng`` (one CPU ``torch.Generator`` per rank),
whose state goes into the checkpoint with the weights, the optimizer moments, the step and the history, so
``--continue`` reproduces an uninterrupted run bit for bit. Only rank 0 writes.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn
from tqdm import tqdm

from nnsynth_gan import ddp
from nnunet_synth.errors import NNSynthError
from nnunet_synth.generators.checkpoint import GeneratorCheckpoint, config_to_dict, load_checkpoint, save_checkpoint
from nnunet_synth.generators.lookup import checkpoint_path

Options = TypeVar("Options")
Result = TypeVar("Result")


def log_main(ctx: ddp.DistContext, msg: str) -> None:
    """Print on rank 0 only."""
    if ctx.is_main:
        print(msg, flush=True)


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def run_distributed(train: Callable[[Options, ddp.DistContext], Result], opts: Options) -> Result:
    """``train(opts, ctx)`` inside a process group set up (and torn down) for ``opts.device``."""
    ctx = ddp.init_distributed(opts.device)
    try:
        return train(opts, ctx)
    finally:
        ddp.shutdown(ctx)


class AdversarialTrainer:
    """Generator + ``adversary`` (critic or discriminator), their Adam optimizers, the rank's RNG, the step and
    the history; ``checkpoint()`` / ``restore()`` snapshot and resume all of it exactly.

    Subclasses set ``history_keys`` (``"step"`` first, then the values ``record`` receives), ``resumed_options``
    (the options stored as ``train_options``) and ``adversary_key`` (the adversary's name in the checkpoint).
    """

    history_keys: tuple[str, ...]
    resumed_options: tuple[str, ...]
    adversary_key: str

    def __init__(self, opts: Any, ctx: ddp.DistContext, make_generator: Callable[[], nn.Module],
                 make_adversary: Callable[[], nn.Module]) -> None:
        self.opts, self.ctx = opts, ctx
        torch.manual_seed(opts.seed)  # identical initial weights on every rank (and broadcast anyway)
        self.generator = make_generator().to(ctx.device)
        self.adversary = make_adversary().to(ctx.device)
        ddp.broadcast_module(self.generator, ctx)
        ddp.broadcast_module(self.adversary, ctx)
        betas = (opts.beta1, opts.beta2)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=opts.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.adversary.parameters(), lr=opts.lr, betas=betas)
        self.rng = torch.Generator().manual_seed(opts.seed + 7919 * ctx.rank)
        self.step_count = 0
        self.history: dict[str, list[float]] = {k: [] for k in self.history_keys}

    def update(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, module: nn.Module) -> None:
        """One optimizer step on ``module`` with the gradients of ``loss`` averaged across ranks."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        ddp.average_gradients(module, self.ctx)
        optimizer.step()

    def record(self, logged: torch.Tensor) -> None:
        """Append the rank-averaged ``logged`` values (``history_keys[1:]`` order) at the current step."""
        logged = ddp.mean_across_ranks(logged, self.ctx)
        bad = [(k, v) for k, v in zip(self.history_keys[1:], logged.tolist()) if not math.isfinite(v)]
        if bad:
            names = ", ".join(f"{k} = {v}" for k, v in bad)
            raise NNSynthError(f"training stopped at step {self.step_count}: {names} is not finite (diverged); "
                               "nothing from this step was saved; the last checkpoint written is the latest good "
                               "one (lower --lr, or check the data)")
        self.history["step"].append(float(self.step_count))
        for key, value in zip(self.history_keys[1:], logged.tolist()):
            self.history[key].append(float(value))

    # ---- checkpoint state -------------------------------------------------------------------------
    def snapshot(self, kind: str, config: Any, fingerprint: dict[str, Any], extra: dict[str, Any]
                 ) -> GeneratorCheckpoint:
        """The full training state (collective: every rank takes part in gathering the RNG states)."""
        rng_states = ddp.gather_tensors(self.rng.get_state(), self.ctx)
        options = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self.opts).items()
                   if k in self.resumed_options}
        key = self.adversary_key
        return GeneratorCheckpoint(
            kind=kind, config=config_to_dict(config),
            state_dicts={"generator": cpu_state(self.generator), key: cpu_state(self.adversary)},
            fingerprint=fingerprint, step=self.step_count,
            optimizer_states={"generator": self.opt_g.state_dict(), key: self.opt_d.state_dict()},
            extra={**extra, "history": {k: list(v) for k, v in self.history.items()},
                   "rng_states": rng_states, "world_size": self.ctx.world_size, "train_options": options})

    def restore(self, ckpt: GeneratorCheckpoint) -> None:
        key = self.adversary_key
        self.generator.load_state_dict(ckpt.state_dicts["generator"])
        self.adversary.load_state_dict(ckpt.state_dicts[key])
        self.opt_g.load_state_dict(ckpt.optimizer_states["generator"])
        self.opt_d.load_state_dict(ckpt.optimizer_states[key])
        self.step_count = ckpt.step
        self.history = {k: list(ckpt.extra["history"].get(k, [])) for k in self.history_keys}
        states = ckpt.extra.get("rng_states", [])
        if len(states) == self.ctx.world_size:
            self.rng.set_state(states[self.ctx.rank].to(torch.uint8))
        else:
            log_main(self.ctx, f"note: checkpoint was written by {len(states)} rank(s), this run has "
                               f"{self.ctx.world_size}; random streams are re-seeded (weights and optimizer "
                               "state resume exactly)")
            self.rng.manual_seed(self.opts.seed + 7919 * self.ctx.rank + 104729 * self.step_count)


def run_paths(dataset_id: int, kind: str, fold: str) -> tuple[Path, Path, Path]:
    """(final checkpoint, latest checkpoint, plots folder) of a ``kind`` run on ``fold``."""
    final_path = checkpoint_path(dataset_id, kind, fold)
    latest_path = checkpoint_path(dataset_id, kind, fold, latest=True)
    return final_path, latest_path, final_path.parent / f"{kind}_fold{fold}_plots"


def load_resumed(opts: Options, latest_path: Path, kind: str, fingerprint: Any,
                 resumed_options: tuple[str, ...]) -> tuple[GeneratorCheckpoint | None, Options]:
    """For ``--continue``: the latest checkpoint and ``opts`` with its stored optimization settings;
    ``(None, opts)`` otherwise."""
    if not opts.resume:
        return None, opts
    if not latest_path.is_file():
        raise NNSynthError(f"--continue: no checkpoint {latest_path} to continue from")
    resumed = load_checkpoint(latest_path, kind=kind, fingerprint=fingerprint)
    stored = resumed.extra.get("train_options", {})
    opts = dataclasses.replace(opts, **{k: stored[k] for k in resumed_options if k in stored})
    if resumed.step >= opts.steps:
        raise NNSynthError(f"{latest_path} is already at step {resumed.step}; ask for more --steps")
    return resumed, opts


def run_loop(trainer: Any, *, desc: str, fingerprint: Any, extra: dict[str, Any], latest_path: Path,
             final_path: Path, plots_dir: Path, plot: Callable[[], None],
             postfix: Callable[[dict[str, list[float]]], dict[str, str]]) -> float:
    """Step ``trainer`` to ``opts.steps``, writing the latest checkpoint (and ``plot()`` on rank 0) every
    ``opts.save_every`` steps and the final one at the end; returns the largest rank weight divergence."""
    opts, ctx = trainer.opts, trainer.ctx

    def save(path_list: list[Path]) -> float:
        ckpt = trainer.checkpoint(fingerprint.to_dict(), extra)  # collective: every rank
        divergence = ddp.max_weight_divergence(trainer.generator, ctx)
        if ctx.is_main:
            for p in path_list:
                save_checkpoint(p, ckpt)
            plot()
        ddp.barrier(ctx)
        return divergence

    bar = tqdm(total=opts.steps, initial=trainer.step_count, desc=desc, unit="step",
               disable=not (ctx.is_main and opts.progress), file=sys.stderr, dynamic_ncols=True)
    divergence = 0.0
    while trainer.step_count < opts.steps:
        trainer.step()
        bar.update(1)
        if trainer.step_count % 10 == 0 or trainer.step_count == opts.steps:
            bar.set_postfix(**postfix(trainer.history))
        if trainer.step_count < opts.steps and trainer.step_count % max(1, opts.save_every) == 0:
            divergence = save([latest_path])
    bar.close()
    divergence = max(divergence, save([latest_path, final_path]))
    if divergence > 0:
        log_main(ctx, f"warning: ranks diverged (max |dw| = {divergence:.3g})")
    log_main(ctx, f"wrote {final_path} (step {trainer.step_count}); plots in {plots_dir}")
    return divergence
