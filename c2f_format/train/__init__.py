"""Training: the images and crops (data), the rate-distortion loss (objective), the
resumable state (state), the steps (loop) and the `c2f-train` command (cli); the quality
scale of an export (calibration) and growing the latent (growth). The project's own
experiments that drive it (GPU rounds, arms, the ablation) are in the repository's lab/,
not in the package. `python -m c2f_format.train` runs `c2f-train`."""
