"""The format: the container (bitstream), its entropy coding, the alpha plane, the numbers
the spec fixes (constants), the weights file (weights_file) and the errors. NumPy only: no
torch, no PIL, and nothing from the rest of c2f_format."""
