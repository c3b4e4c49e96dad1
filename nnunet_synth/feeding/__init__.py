"""Synthetic cases into nnU-Net's training batches: the mixing dataset, the nnU-Net case format, the supply
(feed, pool, on request).
"""
