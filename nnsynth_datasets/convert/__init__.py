"""Cohort converters: public stroke cohorts and plain folders -> nnU-Net raw datasets.

Each cohort module only *discovers* cases (which files belong to which case); validation,
resampling, writing, the summary and the patient-grouped splits are shared (pipeline.py).
"""
