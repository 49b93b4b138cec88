"""Training: the loop and its data, objective, state and the `c2f-train` command (loop),
the quality scale of an export (calibration), growing the latent (growth), one GPU round
(gpu_round), and the recipe measured against Ballé 2018 (ablation, yardstick).
`python -m c2f_format.train` runs `c2f-train`."""
