"""Lesion shapes for synthetic cases: voxel geometry, real components of training cases, mask-GAN samples."""
