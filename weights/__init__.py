"""Shipped model weights (data only; see c2f_format.weights for the file format)."""
