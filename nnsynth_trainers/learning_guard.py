"""The stalled-learning guard: a warning in the training log when a run has not learned the lesions.

On the CPU budget, a run can end with pseudo-Dice 0 on the validation cases for all its epochs while its
training loss falls: a synthetic run at 20 real cases with a fixed 50% share, and a real-only run of the
evidence experiment (10 real cases, seed 3). Both arms share the guard, so a failed reference is as visible
in its log as a failed synthetic arm.
"""

from __future__ import annotations


def logged_values(logger, key: str) -> list:
    """Every epoch's value of ``key`` from nnU-Net's logger (MetaLogger since 2.7, nnUNetLogger before)."""
    if hasattr(logger, "get_value"):
        return list(logger.get_value(key, None))
    return list(logger.my_fantastic_logging[key])


def stalled_learning(log: dict, epochs: int, mixes_synthetic: bool = True) -> str | None:
    """A warning when the validation pseudo-Dice was 0 for the last ``epochs`` epochs (after a warm-up of as
    many) while the training loss fell; the advice depends on whether synthetic cases are mixed in."""
    dice, losses = log.get("mean_fg_dice", []), log.get("train_losses", [])
    if len(dice) < 2 * epochs or len(losses) < 2 * epochs:  # the first ``epochs`` are warm-up: Dice 0 is normal
        return None
    recent, loss = dice[-epochs:], losses[-epochs:]
    if not (all(d == 0 or d != d for d in recent) and loss[-1] < loss[0]):
        return None
    what = (f"pseudo-Dice on the real validation cases has been 0 for {epochs} epochs while the training loss "
            f"fell from {loss[0]:.3f} to {loss[-1]:.3f}: ")
    if mixes_synthetic:
        return what + ("the network may be learning only the synthetic cases; try a lower or decaying synthetic "
                       "fraction (nnUNetTrainerSynth_decay, NNSYNTH_SCHEDULE)")
    return what + ("the network has not learned the lesions (real cases only); the budget may be too small for "
                   "this subsample, or this training's seed is unlucky: a paired comparison against this run "
                   "compares against a failed reference")
