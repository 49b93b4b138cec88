"""The networks: layers, the model in its training form, its inference form (inference),
loading and saving weights (weights), and the NumPy arithmetic of the layers
(numpy_layers). They use the format, nothing above it."""
