"""Errors that the CLI reports as one clear line instead of a traceback."""


class NNSynthError(Exception):
    """A user-facing problem: bad input file, missing dataset, foreign checkpoint, ..."""
