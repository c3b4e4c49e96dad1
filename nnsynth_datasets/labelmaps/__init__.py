"""Anatomical label maps of real cases: estimated from an image or imported from FreeSurfer-style segmentations."""
