"""Encoded images -> RGB tensors on the device (nvJPEG via torchvision, else OpenCV + upload)."""

from __future__ import annotations

from typing import Sequence

import torch

from hsrpose.data.imageio import imdecode_flags

__all__ = ["gpu_decode_available", "decode_jpegs"]


def gpu_decode_available() -> bool:
    """True when ``torchvision.io.decode_jpeg`` can decode on CUDA here."""
    if not torch.cuda.is_available():
        return False
    try:
        from torchvision.io import decode_jpeg  # noqa: F401
    except Exception:  # torchvision missing, or built against another torch
        return False
    return True


def decode_jpegs(data: Sequence[torch.Tensor], device: torch.device, use_gpu: bool) -> list[torch.Tensor | None]:
    """Encoded images (1-D uint8 CPU tensors) -> (3,H,W) uint8 **RGB** on ``device``; None where undecodable.

    ``use_gpu``: nvJPEG via ``torchvision.io.decode_jpeg(device='cuda')`` (one batched
    call; a file it refuses -- CMYK, PNG, corrupt -- is retried alone, then with OpenCV).
    Otherwise OpenCV decodes on the CPU (as ``read_image_bgr``: EXIF orientation ignored,
    like nvJPEG and the reference) and the image is uploaded. The caller compares sizes
    with the annotation file and falls back to ``read_image_bgr`` for its error.
    """
    import cv2

    out: list[torch.Tensor | None] = [None] * len(data)
    todo = list(range(len(data)))
    if use_gpu and todo:
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            for i, im in zip(todo, decode_jpeg([data[i] for i in todo], mode=ImageReadMode.RGB, device=device)):
                out[i] = im
            todo = []
        except Exception:  # one bad file fails the batched call
            for i in list(todo):
                try:
                    out[i] = decode_jpeg(data[i], mode=ImageReadMode.RGB, device=device)
                    todo.remove(i)
                except Exception:
                    pass
    for i in todo:
        img = cv2.imdecode(data[i].numpy(), imdecode_flags(exif_orientation=False))  # dataset: stored pixels
        if img is not None:
            out[i] = torch.from_numpy(img).to(device, non_blocking=True).permute(2, 0, 1).flip(0)  # BGR -> RGB
    return out
