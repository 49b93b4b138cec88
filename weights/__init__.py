"""Shipped model weights (data only; see c2f_format.format.weights_file for the file format)."""
