"""Settings read from ``NNSYNTH_*`` environment variables, in one place, with one error.

nnU-Net's trainer constructor takes no extra arguments (its checkpoints record the init arguments),
so the training budget and the synthesis settings come from the environment, on top of a trainer
variant's class attributes. A bad value is refused with :class:`SettingsError`, which names the
variable, the value and what is allowed, before nnU-Net creates any output folder.

Training budget (every trainer of nnsynth, the real-only baseline included):

- ``NNSYNTH_EPOCHS``, ``NNSYNTH_ITERATIONS``, ``NNSYNTH_VAL_ITERATIONS``, ``NNSYNTH_SAVE_EVERY``: integers >= 1
- ``NNSYNTH_TORCH_THREADS``: integer >= 1, torch threads of the trainer (nnU-Net takes every core on a CPU;
  the experiment runner sets it when it trains several runs side by side)
- ``NNSYNTH_FINAL_VALIDATION``: 1 (default) or 0, skip nnU-Net's final sliding-window validation

Synthesis (the synth trainers):

- ``NNSYNTH_FRACTION``: share of synthetic cases per training batch, in [0, 1] (at the start, with a schedule)
- ``NNSYNTH_SCHEDULE``: ``constant`` | ``linear`` | ``cosine`` decay from ``NNSYNTH_FRACTION`` to
  ``NNSYNTH_FRACTION_END`` (in [0, 1]) over the epochs
- ``NNSYNTH_LESIONS``: lesion source (``real`` | ``maskgan``), ``NNSYNTH_RENDERER`` (``gmm`` | ``randomized`` |
  ``pix2pix`` | ``spade`` | ``inpaint`` | ``inpaint-pix2pix`` | ``inpaint-spade``); the names are checked
  against the synthesis registry when the engine is built
- ``NNSYNTH_POOL_SIZE`` (integer >= 0; 0 generates every case on request), ``NNSYNTH_POOL_USES`` (integer >= 1)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

from nnunet_synth.errors import NNSynthError

T = TypeVar("T")


class SettingsError(NNSynthError):
    """An NNSYNTH_* variable holds a value that cannot be used."""


def _integer(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise ValueError(f"must be an integer >= {minimum}")
        return value
    parse.__doc__ = f"an integer >= {minimum}"
    return parse


def _fraction(text: str) -> float:
    """a number in [0, 1]"""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError("must be in [0, 1]")
    return value


SCHEDULES = ("constant", "linear", "cosine")


def _schedule(text: str) -> str:
    """constant, linear or cosine"""
    if text not in SCHEDULES:
        raise ValueError(f"must be one of {', '.join(SCHEDULES)}")
    return text


def _switch(text: str) -> bool:
    """0 or 1"""
    if text not in ("0", "1"):
        raise ValueError("must be 0 or 1")
    return text == "1"


def _name(text: str) -> str:
    """a name"""
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


def read_variable(env: Mapping[str, str], variable: str, parse: Callable[[str], T], default: T) -> T:
    """The parsed value of one variable (default when unset or empty); SettingsError when it does not parse."""
    text = env.get(variable, "")
    if text == "":
        return default
    try:
        return parse(text)
    except ValueError:
        raise SettingsError(f"{variable}={text!r} is not valid: expected {parse.__doc__}") from None


def _from_env(cls: type[T], defaults: T | None, env: Mapping[str, str] | None) -> T:
    env = os.environ if env is None else env
    base = defaults if defaults is not None else cls()
    values: dict[str, Any] = {}
    for f in fields(cls):
        variable, parse = f.metadata["variable"], f.metadata["parse"]
        values[f.name] = read_variable(env, variable, parse, getattr(base, f.name))
    return replace(base, **values)


def _var(variable: str, parse: Callable[[str], Any], default: Any) -> Any:
    return field(default=default, metadata={"variable": variable, "parse": parse})


@dataclass(frozen=True)
class TrainingBudget:
    """nnU-Net's training budget; None keeps nnU-Net's own value (1000 epochs x 250 iterations, ...)."""

    epochs: int | None = _var("NNSYNTH_EPOCHS", _integer(1), None)
    iterations: int | None = _var("NNSYNTH_ITERATIONS", _integer(1), None)
    val_iterations: int | None = _var("NNSYNTH_VAL_ITERATIONS", _integer(1), None)
    save_every: int | None = _var("NNSYNTH_SAVE_EVERY", _integer(1), None)
    torch_threads: int | None = _var("NNSYNTH_TORCH_THREADS", _integer(1), None)
    final_validation: bool = _var("NNSYNTH_FINAL_VALIDATION", _switch, True)

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> TrainingBudget:
        return _from_env(cls, None, env)

    def trainer_attributes(self) -> dict[str, int]:
        """nnUNetTrainer attribute -> value, for the fields that are set."""
        names = {"epochs": "num_epochs", "iterations": "num_iterations_per_epoch",
                 "val_iterations": "num_val_iterations_per_epoch", "save_every": "save_every"}
        return {attr: getattr(self, name) for name, attr in names.items() if getattr(self, name) is not None}


@dataclass(frozen=True)
class SynthesisSettings:
    """What a synth trainer mixes in: the variant's class attributes, overridden by the environment."""

    fraction: float = _var("NNSYNTH_FRACTION", _fraction, 0.5)
    lesions: str = _var("NNSYNTH_LESIONS", _name, "real")
    renderer: str = _var("NNSYNTH_RENDERER", _name, "gmm")
    pool_size: int = _var("NNSYNTH_POOL_SIZE", _integer(0), 16)
    pool_uses: int = _var("NNSYNTH_POOL_USES", _integer(1), 4)
    schedule: str = _var("NNSYNTH_SCHEDULE", _schedule, "constant")
    fraction_end: float | None = _var("NNSYNTH_FRACTION_END", _fraction, None)  # None: = fraction

    @classmethod
    def from_environment(cls, defaults: SynthesisSettings | None = None,
                         env: Mapping[str, str] | None = None) -> SynthesisSettings:
        return _from_env(cls, defaults, env)

    def fraction_at(self, progress: float) -> float:
        """The synthetic share at ``progress`` in [0, 1] of training (epoch / epochs)."""
        import math

        t = min(max(float(progress), 0.0), 1.0)
        end = self.fraction if self.fraction_end is None else self.fraction_end
        if self.schedule == "constant":
            return self.fraction
        weight = t if self.schedule == "linear" else (1 - math.cos(math.pi * t)) / 2
        return self.fraction + (end - self.fraction) * weight

    @property
    def largest_fraction(self) -> float:
        """The largest share the schedule reaches (0: no synthetic case is ever mixed in)."""
        return self.fraction if self.schedule == "constant" else max(self.fraction_at(0), self.fraction_at(1))


ENVIRONMENT_VARIABLES = tuple(f.metadata["variable"] for cls in (TrainingBudget, SynthesisSettings)
                              for f in fields(cls))
