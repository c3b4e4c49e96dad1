"""nnU-Net trainer subclasses that mix synthetic stroke cases into training batches."""
