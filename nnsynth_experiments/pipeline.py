"""Running nnU-Net's and nnsynth's own console commands as a pipeline, with visible progress.

The demo and the experiment runner drive the real commands (nothing is re-implemented or mocked),
each step timed and its output streamed, so a user sees exactly what they would type themselves.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_synth.errors import NNSynthError


def console_script(name: str) -> str:
    """The console script installed next to this interpreter (falls back to PATH)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


# what a quiet pipeline still shows: every 10th nnU-Net epoch
PROGRESS = re.compile(r": Epoch \d*0$")


@dataclass
class Pipeline:
    env: dict[str, str]
    log_file: Path
    timings: list[tuple[str, float]] = field(default_factory=list)
    quiet: bool = False

    def run(self, label: str, command: list[str], extra_env: dict[str, str] | None = None) -> str:
        env = {**self.env, **(extra_env or {})}
        cmd = [console_script(command[0]), *map(str, command[1:])]
        self._say(f"\n=== {label}\n$ {shlex.join([command[0], *map(str, command[1:])])}")
        start = time.perf_counter()
        output = []
        with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              bufsize=1) as proc, open(self.log_file, "a") as log:
            log.write(f"\n=== {label}\n$ {shlex.join(cmd)}\n")
            for line in proc.stdout:
                output.append(line)
                log.write(line)
                if not self.quiet:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                elif PROGRESS.search(line):
                    print(f"  [{label}] {line.split(': ', 1)[-1].strip()}", flush=True)
            proc.wait()
        elapsed = time.perf_counter() - start
        self.timings.append((label, elapsed))
        if proc.returncode != 0:
            tail = "".join(output[-30:])
            raise NNSynthError(f"step '{label}' failed (exit {proc.returncode}); full log: {self.log_file}\n{tail}")
        self._say(f"=== {label}: done in {elapsed:.0f} s")
        return "".join(output)

    def _say(self, text: str) -> None:
        with open(self.log_file, "a") as log:
            log.write(text + "\n")
        print(text, flush=True)


def nnunet_environment(root: Path | None, trainer_path: str | None = None,
                       base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for nnU-Net commands: a small CPU footprint, private folders under root (when given)."""
    env = dict(os.environ if base is None else base)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        if root is not None:
            (root / var).mkdir(parents=True, exist_ok=True)
            env[var] = str(root / var)
    env.setdefault("nnUNet_def_n_proc", "1")
    env.setdefault("nnUNet_compile", "f")
    env["nnUNet_n_proc_DA"] = env.get("nnUNet_n_proc_DA", "0")
    env.setdefault("PYTHONUNBUFFERED", "1")
    if trainer_path:
        env["nnUNet_extTrainer"] = trainer_path
    return env
