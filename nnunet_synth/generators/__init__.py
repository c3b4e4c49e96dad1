"""Learned generators on disk: the checkpoint format, where a fold's checkpoints live, the embedded demo
defaults.
"""
