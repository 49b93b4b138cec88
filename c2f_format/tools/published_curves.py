"""Published rate–distortion points on the Kodak set (PSNR-RGB, bpp), for reference
curves in `c2f bench`. Numbers from CompressAI's results/image/kodak JSON files
(InterDigitalInc/CompressAI): BPG 0.9.8 4:4:4 x265 (bpg_444_x265_ycbcr.json) and their
bmshj2018-hyperprior MSE models on CPU (compressai-bmshj2018-hyperprior_mse_cpu.json).
"""

from __future__ import annotations

KODAK: dict[str, list[tuple[float, float]]] = {
    "bpg444 (published)": [
        (0.0678, 26.195),
        (0.1610, 28.682),
        (0.3516, 31.595),
        (0.6847, 34.857),
        (1.1997, 38.260),
        (1.9297, 41.479),
        (3.0579, 44.703),
        (4.7031, 47.633),
    ],
    "bmshj2018-hyperprior (CompressAI, published)": [
        (0.1313, 27.582),
        (0.2089, 29.197),
        (0.3199, 30.972),
        (0.4784, 32.838),
        (0.6687, 34.526),
        (0.9388, 36.743),
        (1.2592, 38.584),
        (1.6602, 40.557),
    ],
}
