"""The data-scarce experiment runner and the demo: they drive the real console commands and may import the
trainers.
"""
