"""The label-map -> image translators (pix2pix, SPADE): data, training, report and their commands."""
