"""Training: the images and crops (data), the rate-distortion loss (objective), the
resumable state (state), the steps (loop) and the `c2f-train` command (cli); the quality
scale of an export (calibration), growing the latent (growth), one GPU round
(gpu_round), and the recipe measured against Ballé 2018 (ablation, yardstick).
`python -m c2f_format.train` runs `c2f-train`."""
