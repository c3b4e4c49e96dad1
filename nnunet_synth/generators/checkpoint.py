"""One checkpoint format for every generator (mask GAN, pix2pix, SPADE).

A checkpoint is a plain dict so that ``torch.load(..., weights_only=True)`` can read it: nothing but
tensors, str/int/float/bool/None and lists/tuples/dicts of those. Layout::

    format_version  int
    kind            "maskgan" | "pix2pix" | "spade"
    config          the model's config dataclass as a dict (rebuilt with ``Config(**d)``)
    state_dicts     {"generator": ..., "critic"/"discriminator": ...}
    fingerprint     DatasetFingerprint.to_dict() of the dataset it was trained for
    step            training steps done
    optimizer_states {name: optimizer.state_dict()} (for exact resume)
    extra           kind-specific plain data (loss history, RNG states, location prior, ...)

Files are written to a temporary file in the target folder and renamed with ``os.replace``, so a
crash never leaves a truncated checkpoint where a good one was.
"""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.atomic import to_plain, torch_save_atomic
from nnunet_synth.nnunet_io.fingerprint import DatasetFingerprint

FORMAT_VERSION = 1
KINDS = ("maskgan", "pix2pix", "spade")
C = TypeVar("C")


@dataclass
class GeneratorCheckpoint:
    kind: str
    config: dict[str, Any]
    state_dicts: dict[str, dict[str, torch.Tensor]]
    fingerprint: dict[str, Any]
    step: int = 0
    optimizer_states: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise NNSynthError(f"unknown generator kind {self.kind!r} (expected one of {', '.join(KINDS)})")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "config": dict(self.config),
            "state_dicts": self.state_dicts,
            "fingerprint": dict(self.fingerprint),
            "step": int(self.step),
            "optimizer_states": self.optimizer_states,
            "extra": self.extra,
        }

    def dataset_fingerprint(self) -> DatasetFingerprint:
        return DatasetFingerprint.from_dict(self.fingerprint)

    def build_config(self, cls: type[C]) -> C:
        """Rebuild the model config dataclass stored in the checkpoint."""
        return config_from_dict(cls, self.config, self.path)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as a dict of plain values (tuples become lists)."""
    return to_plain(dataclasses.asdict(config))


def config_from_dict(cls: type[C], data: dict[str, Any], path: Path | str | None = None) -> C:
    try:
        return cls(**data)
    except TypeError as exc:
        raise NNSynthError(f"checkpoint {path or ''} holds a {cls.__name__} this version cannot read "
                           f"({exc})") from exc


def _weights_only_safe(value: Any) -> Any:
    """numpy scalars (np.str_, np.float64, ...) -> python, arrays -> tensors: weights_only=True can read them."""
    return to_plain(value, array=lambda a: torch.from_numpy(np.ascontiguousarray(a)), keep_tuples=True,
                    str_keys=False)


def save_checkpoint(path: str | Path, ckpt: GeneratorCheckpoint) -> Path:
    """Write atomically: temporary file in the same folder, fsync, then os.replace."""
    path = torch_save_atomic(Path(path), _weights_only_safe(ckpt.to_dict()))
    ckpt.path = path
    return path


def load_checkpoint(path: str | Path, kind: str | None = None,
                    fingerprint: DatasetFingerprint | None = None,
                    map_location: str | torch.device = "cpu") -> GeneratorCheckpoint:
    """Load with ``weights_only=True``; refuse another kind or a checkpoint made for another dataset."""
    path = Path(path)
    if not path.is_file():
        raise NNSynthError(f"checkpoint {path} not found")
    try:
        raw = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise NNSynthError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(raw, dict) or "kind" not in raw or "state_dicts" not in raw:
        raise NNSynthError(f"{path} is not an nnsynth generator checkpoint")
    version = int(raw.get("format_version", 0))
    if version > FORMAT_VERSION:
        raise NNSynthError(f"checkpoint {path} has format version {version}; this nnsynth reads up to "
                           f"{FORMAT_VERSION}")
    if kind is not None and raw["kind"] != kind:
        raise NNSynthError(f"checkpoint {path} holds a {raw['kind']!r} generator, not {kind!r}")
    ckpt = GeneratorCheckpoint(kind=raw["kind"], config=raw["config"], state_dicts=raw["state_dicts"],
                               fingerprint=raw["fingerprint"], step=int(raw.get("step", 0)),
                               optimizer_states=raw.get("optimizer_states", {}),
                               extra=raw.get("extra", {}), path=path)
    if fingerprint is not None:
        ckpt.dataset_fingerprint().require_match(fingerprint, path)
    return ckpt
