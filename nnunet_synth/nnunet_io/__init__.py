"""nnU-Net's side of the data path: folders from the environment, the preprocessed-dataset handle and
fingerprint, the one fold owner, label maps on the preprocessed grid, plans shrinking, atomic writes.
"""
