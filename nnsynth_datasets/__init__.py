"""Cohort converters, anatomical label maps and the offline demo cohort (nnU-Net raw format)."""
