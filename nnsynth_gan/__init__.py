"""Training loops for the lesion-mask GAN and the label-map-to-MRI translators."""
