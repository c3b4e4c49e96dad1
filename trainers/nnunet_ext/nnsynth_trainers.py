# Re-exports only: nnU-Net imports the modules of the folder named in nnUNet_extTrainer as top-level
# modules; the classes themselves live in the importable package `trainers` (so pickling works).
from trainers.budget import nnUNetTrainerBudget  # noqa: F401
from trainers.synth_trainer import (  # noqa: F401
    nnUNetTrainerSynth,
    nnUNetTrainerSynth_p25,
    nnUNetTrainerSynth_p75,
    nnUNetTrainerSynthMaskGAN,
    nnUNetTrainerSynthOnly,
    nnUNetTrainerSynthOnlyPix2pix,
    nnUNetTrainerSynthPix2pix,
    nnUNetTrainerSynthSPADE,
)
