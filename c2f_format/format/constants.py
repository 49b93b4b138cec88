"""The numbers the bitstream fixes (spec sections 2, 5, 6, 7, 8 and 9), with no torch import.

The integer networks' grids and bounds are shared by training (`layers.py`), the torch
decoder and the NumPy decoder; keeping them here lets a decode-only install read them.
"""

from __future__ import annotations

TRANSFORM_KERNEL = 5  # g_a's and g_s's stride-2 convolutions are 5 x 5 (spec 8)
PREVIEW_SCALE = 8  # the preview is at 1/8 of each side (spec 9)
# the scales a stream decodes at: whole, 1/2 and 1/4 of each side (the synthesis stops
# early), and the preview from the hyper layers; each side rounded up (`reduced_size`)
REDUCE_FACTORS = (1, 2, 4, PREVIEW_SCALE)
MODEL_ID_BYTES = 16  # the header's model id: the start of the weights' SHA-256 (spec 2.1, 5)
WEIGHT_MAX = 2047  # integer weights are 12-bit signed
HIDDEN_STEP = 1.0 / 32.0  # hidden activations live on this grid ...
HIDDEN_MAX = 1024  # ... as integers in [0, HIDDEN_MAX]
MEAN_STEP = 1.0 / 16.0  # means and hyper-latent inputs live on this grid
MEAN_MAX = 32768  # |mean| <= MEAN_MAX * MEAN_STEP
MULT_BITS = 16  # requantisation multipliers lie in [2**14, 2**16)
MAX_SHIFT = 40  # ... and shifts in [1, MAX_SHIFT] (spec 6.3)
SCALE_LEVELS = 64  # scale indices 0..63 select the entropy tables (spec 7.1)
STEPS_PER_MEAN = round(1 / MEAN_STEP)
