"""Identity of the preprocessed dataset a generator was trained for.

A generator works in nnU-Net's preprocessed space (target spacing, axis order after
``transpose_forward``, nnU-Net's normalization), so a checkpoint is only valid for a dataset that was
planned and preprocessed the same way. The fingerprint records exactly the fields that define that
space and ``require_match`` refuses anything else with a message that names the differing fields.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.atomic import to_plain

DATA_INDEPENDENT_FIELDS = ("plans_name", "patch_size")


@dataclass(frozen=True)
class DatasetFingerprint:
    """The fields of a preprocessed nnU-Net dataset that a generator depends on."""

    dataset_name: str
    plans_name: str
    configuration: str
    spacing: tuple[float, ...]
    patch_size: tuple[int, ...]
    channel_names: dict[str, str]
    labels: dict[str, Any]
    normalization_schemes: tuple[str, ...]
    transpose_forward: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "patch_size", tuple(int(s) for s in self.patch_size))
        object.__setattr__(self, "normalization_schemes", tuple(str(s) for s in self.normalization_schemes))
        object.__setattr__(self, "transpose_forward", tuple(int(s) for s in self.transpose_forward))
        object.__setattr__(self, "channel_names", {str(k): str(v) for k, v in self.channel_names.items()})
        object.__setattr__(self, "labels", to_plain(self.labels))

    @property
    def voxel_volume_ml(self) -> float:
        return math.prod(self.spacing) / 1000.0

    def to_dict(self) -> dict[str, Any]:
        """Plain containers only, so the dict survives ``torch.load(weights_only=True)``."""
        return to_plain(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetFingerprint:
        names = {f.name for f in fields(cls)}
        missing = names - set(data)
        if missing:
            raise NNSynthError(f"dataset fingerprint lacks the fields {sorted(missing)}")
        return cls(**{k: data[k] for k in names})

    def differences(self, other: DatasetFingerprint) -> dict[str, tuple[Any, Any]]:
        """Fields whose values differ, as {field: (self value, other value)}.

        plans_name and patch_size are recorded but not compared: plans copies such as
        `nnsynth shrink-plans` change the network and patch, not the preprocessed data a generator learned.
        """
        out = {}
        for f in fields(self):
            if f.name in DATA_INDEPENDENT_FIELDS:
                continue
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name == "spacing":
                same = len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-4) for x, y in zip(a, b))
            else:
                same = to_plain(a) == to_plain(b)
            if not same:
                out[f.name] = (to_plain(a), to_plain(b))
        return out

    def require_match(self, dataset: DatasetFingerprint, checkpoint: str | Path) -> None:
        """Raise when ``dataset`` is not the dataset this (checkpoint's) fingerprint describes."""
        diff = self.differences(dataset)
        if diff:
            details = "; ".join(f"{k}: checkpoint {a!r} vs dataset {b!r}" for k, (a, b) in diff.items())
            raise NNSynthError(f"checkpoint {checkpoint} was trained for {self.dataset_name} "
                               f"({self.plans_name}/{self.configuration}) and does not fit "
                               f"{dataset.dataset_name} ({dataset.plans_name}/{dataset.configuration}): "
                               f"{details}")
