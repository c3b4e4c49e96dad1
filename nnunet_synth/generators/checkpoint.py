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
    weights_sha256  content hash of state_dicts, checked on load (absent in files written before it existed)

Files are written to a temporary file in the target folder and renamed with ``os.replace``, so a
crash never leaves a truncated checkpoint where a good one was.
"""

from __future__ import annotations

import dataclasses
import hashlib
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
            "weights_sha256": weights_sha256(self.state_dicts),
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


def weights_sha256(state_dicts: dict[str, dict[str, torch.Tensor]]) -> str:
    """Content hash of the weights (names, dtypes, shapes and bytes), stored with them to detect corruption."""
    digest = hashlib.sha256()
    for group in sorted(state_dicts):
        for name in sorted(state_dicts[group]):
            tensor = state_dicts[group][name]
            if not isinstance(tensor, torch.Tensor):
                continue
            t = tensor.detach().cpu().contiguous()
            digest.update(f"{group}/{name}:{t.dtype}:{tuple(t.shape)};".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _integer_field(raw: dict, key: str, default: int, path: Path) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < 0:
        raise NNSynthError(f"checkpoint {path} is damaged: {key!r} must be a whole number >= 0, got {value!r}")
    return int(value)


def _checked_structure(raw: Any, path: Path) -> None:
    """Refuse anything that is not a complete nnsynth generator checkpoint, naming what is wrong."""
    if not isinstance(raw, dict) or "kind" not in raw or "state_dicts" not in raw:
        raise NNSynthError(f"{path} is not an nnsynth generator checkpoint")
    for key, kind in (("config", dict), ("fingerprint", dict), ("state_dicts", dict)):
        if not isinstance(raw.get(key), kind):
            raise NNSynthError(f"checkpoint {path} is damaged: {key!r} is missing or not a {kind.__name__}")
    for group, state in raw["state_dicts"].items():
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise NNSynthError(f"checkpoint {path} is damaged: state_dicts[{group!r}] is not a dict of tensors")
    if "generator" not in raw["state_dicts"]:
        raise NNSynthError(f"checkpoint {path} is damaged: it holds no generator weights")
    for key in ("optimizer_states", "extra"):
        if not isinstance(raw.get(key, {}), dict):
            raise NNSynthError(f"checkpoint {path} is damaged: {key!r} is not a dict")


def load_checkpoint(path: str | Path, kind: str | None = None,
                    fingerprint: DatasetFingerprint | None = None,
                    map_location: str | torch.device = "cpu") -> GeneratorCheckpoint:
    """Load with ``weights_only=True`` and check it: structure, weights hash (when stored), kind, dataset.

    Every refusal is an NNSynthError that names the file and the problem (truncated, empty, not a
    checkpoint, damaged fields, weights that do not match their hash, another kind, another dataset).
    """
    path = Path(path)
    if not path.is_file():
        raise NNSynthError(f"checkpoint {path} not found")
    if path.stat().st_size == 0:
        raise NNSynthError(f"checkpoint {path} is empty (0 bytes): it was not written completely")
    try:
        raw = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, text file, foreign or malicious pickle, ...
        first = (str(exc).strip().splitlines() or [""])[0] or type(exc).__name__
        raise NNSynthError(f"cannot read checkpoint {path}: {first}") from None
    _checked_structure(raw, path)
    version = _integer_field(raw, "format_version", 0, path)
    if version > FORMAT_VERSION:
        raise NNSynthError(f"checkpoint {path} has format version {version}; this nnsynth reads up to "
                           f"{FORMAT_VERSION}")
    step = _integer_field(raw, "step", 0, path)
    stored = raw.get("weights_sha256")
    if stored is not None and stored != weights_sha256(raw["state_dicts"]):
        raise NNSynthError(f"checkpoint {path} is corrupted: its weights do not match the hash stored with them "
                           "(the file changed after it was written); train again or restore a copy")
    if raw["kind"] not in KINDS:
        raise NNSynthError(f"checkpoint {path} holds an unknown generator kind {raw['kind']!r} "
                           f"(expected one of {', '.join(KINDS)})")
    if kind is not None and raw["kind"] != kind:
        raise NNSynthError(f"checkpoint {path} holds a {raw['kind']!r} generator, not {kind!r}")
    ckpt = GeneratorCheckpoint(kind=raw["kind"], config=raw["config"], state_dicts=raw["state_dicts"],
                               fingerprint=raw["fingerprint"], step=step,
                               optimizer_states=raw.get("optimizer_states", {}),
                               extra=raw.get("extra", {}), path=path)
    if fingerprint is not None:
        try:
            stored_fingerprint = ckpt.dataset_fingerprint()
        except (NNSynthError, TypeError, ValueError) as exc:
            raise NNSynthError(f"checkpoint {path} is damaged: its dataset fingerprint cannot be read ({exc})") \
                from None
        stored_fingerprint.require_match(fingerprint, path)
    return ckpt
