"""The synthesis engine (host anatomy + lesion + appearance -> case), its builder and registry, tissue classes,
the mosaic.
"""
