"""The offline demo cohort: MNI152 anatomy, simulated infarcts, DWI/ADC contrast, and `nnsynth demo-cohort`."""
