"""The lesion-mask GAN: data, training, report and `nnsynth train-maskgan` / `sample-masks` / `maskgan-report`."""
