"""Stroke lesion metrics (ISLES'22) and `nnsynth evaluate`."""
