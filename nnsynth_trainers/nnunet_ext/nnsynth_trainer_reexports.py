# (The file name must differ from every importable package: nnU-Net imports it as a top-level module.)
# Re-exports only: nnU-Net imports the modules of the folder named in nnUNet_extTrainer as top-level
# modules; the classes themselves live in the importable package `nnsynth_trainers` (so pickling works).
from nnsynth_trainers.budget import nnUNetTrainerBudget  # noqa: F401
from nnsynth_trainers.synth_trainer import (  # noqa: F401
    nnUNetTrainerSynth,
    nnUNetTrainerSynth_decay,
    nnUNetTrainerSynth_p25,
    nnUNetTrainerSynth_p75,
    nnUNetTrainerSynthInpaint,
    nnUNetTrainerSynthInpaintMaskGAN,
    nnUNetTrainerSynthInpaintPix2pix,
    nnUNetTrainerSynthInpaintSPADE,
    nnUNetTrainerSynthMaskGAN,
    nnUNetTrainerSynthOnly,
    nnUNetTrainerSynthOnlyPix2pix,
    nnUNetTrainerSynthPix2pix,
    nnUNetTrainerSynthRandomized,
    nnUNetTrainerSynthSPADE,
)
