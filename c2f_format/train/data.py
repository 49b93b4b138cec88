"""Training data: the image folders, the packed JPEG training set that travels to a GPU,
random crops cut on the CPU or on the device, and the fixed validation crops."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm"}
PACK_QUALITY = 90  # JPEG 4:4:4: errors near 40 dB, above every trained rate
PACK_MAX_SIDE = 576  # keeps all 508 training photos within what travels to a GPU


def image_paths(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def load_images(folder: Path, max_side: int = 1024) -> list[np.ndarray]:
    """All images under `folder` as RGB uint8 arrays; large ones are halved until the
    longer side is at most `max_side` (downscaling removes noise and makes photos look
    more like the 512-768 px benchmark images)."""
    images = []
    for path in image_paths(folder):
        with Image.open(path) as src:
            rgb = src.convert("RGB")
        while max(rgb.size) > max_side:
            rgb = rgb.reduce(2)
        images.append(np.asarray(rgb))
    if not images:
        raise SystemExit(f"no images found under {folder}")
    return images


def fit_within(rgb: Image.Image, max_side: int) -> Image.Image:
    """Downscale (box-halving, then Lanczos for the rest) so the longer side <= max_side."""
    while max(rgb.size) >= 2 * max_side:
        rgb = rgb.reduce(2)
    if max(rgb.size) > max_side:
        ratio = max_side / max(rgb.size)
        size = (max(1, round(rgb.width * ratio)), max(1, round(rgb.height * ratio)))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    return rgb


def pack_images(
    folders: list[Path], out: Path, quality: int = PACK_QUALITY, max_side: int = PACK_MAX_SIDE
) -> int:
    """Write the training images, downscaled to at most `max_side`, as JPEG 4:4:4 into
    `out`: the one training set of CPU and GPU rounds alike, small enough to travel with
    the code to a GPU machine. Returns the bytes written."""
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    for n, folder in enumerate(folders):
        for i, path in enumerate(image_paths(folder)):
            with Image.open(path) as src:
                rgb = fit_within(src.convert("RGB"), max_side)
            target = out / f"{n:02d}-{folder.name}-{i:04d}.jpg"
            rgb.save(target, quality=quality, subsampling=0)
            total += target.stat().st_size
    return total


class Sampler(Protocol):
    def batch(self, size: int) -> torch.Tensor: ...


class CropSampler:
    """Random crops with horizontal flips, cut on the CPU from uint8 arrays."""

    def __init__(self, images: list[np.ndarray], crop: int, seed: int) -> None:
        self.images = [im for im in images if min(im.shape[:2]) >= crop]
        if not self.images:
            raise SystemExit(f"no training image is at least {crop}x{crop}")
        self.crop = crop
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> torch.Tensor:
        out = np.empty((size, self.crop, self.crop, 3), dtype=np.uint8)
        for i in range(size):
            im = self.images[self.rng.integers(len(self.images))]
            top = self.rng.integers(im.shape[0] - self.crop + 1)
            left = self.rng.integers(im.shape[1] - self.crop + 1)
            patch = im[top : top + self.crop, left : left + self.crop]
            if self.rng.random() < 0.5:
                patch = patch[:, ::-1]
            out[i] = patch
        return torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255.0


class DeviceCrops:
    """The same crops, cut where the images live: every image sits on the device as
    uint8 (the whole pack is about 0.5 GB there), so a step moves no pixels over PCIe
    and needs no data loader."""

    def __init__(self, images: list[np.ndarray], crop: int, seed: int, device: torch.device):
        kept = [im for im in images if min(im.shape[:2]) >= crop]
        if not kept:
            raise SystemExit(f"no training image is at least {crop}x{crop}")
        self.images = [torch.from_numpy(np.array(im)).permute(2, 0, 1).to(device) for im in kept]
        self.crop = crop
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> torch.Tensor:
        patches = []
        for _ in range(size):
            im = self.images[self.rng.integers(len(self.images))]
            top = int(self.rng.integers(im.shape[1] - self.crop + 1))
            left = int(self.rng.integers(im.shape[2] - self.crop + 1))
            patch = im[:, top : top + self.crop, left : left + self.crop]
            patches.append(patch.flip(2) if self.rng.random() < 0.5 else patch)
        return torch.stack(patches).float() / 255.0


def validation_crops(folder: Path, count: int = 8, size: int = 256) -> list[torch.Tensor]:
    """Centre crops of the first `count` images of a held-out folder, as [1,3,h,w]."""
    crops = []
    for im in load_images(folder)[:count]:
        h, w = (min(size, s) // 64 * 64 for s in im.shape[:2])
        top, left = (im.shape[0] - h) // 2, (im.shape[1] - w) // 2
        patch = im[top : top + h, left : left + w].copy()
        crops.append(torch.from_numpy(patch).permute(2, 0, 1).float().unsqueeze(0) / 255)
    return crops
