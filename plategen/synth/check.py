"""The label check: the checkpoint's discriminator reads each generated image.

An image read as another character is drawn again, up to `CHECK_ATTEMPTS` times, with
(glyph variant, style entry) pairs the plan set aside for it; the best-read attempt is kept
and the manifest says whether it passed. The "generated" output of the k+1 head is ignored.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from plategen.model import fold_discriminator

CPU_CHUNK = 64  # images per pass of the label check and of the engine's split decoder on CPU


class LabelCheck:
    """The checkpoint's discriminator as a reader of generated images (its k class outputs).

    Speed: BN is folded into the convs (`fold_discriminator`); on CPU the images are read
    channels-last, as the engine makes them, in chunks of `CPU_CHUNK` that stay in cache.
    """

    def __init__(self, discriminator: nn.Module, classes: Sequence[int], device: torch.device):
        self.model = fold_discriminator(discriminator).to(device)
        self.chunk = CPU_CHUNK if device.type == "cpu" else 0
        if self.chunk:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.classes = torch.as_tensor(list(classes), device=device)

    @torch.inference_mode()
    def read(self, images: Tensor, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """images [B,3,S,S] in 0-255, labels [B] into the run's chars -> (read as the label, its
        probability among the k real classes)."""
        step = self.chunk or len(images)
        logits = torch.cat([self.model(images[a:a + step] / 255) for a in range(0, len(images), step)])
        logits = logits[:, :-1].float()
        want = self.classes[torch.from_numpy(labels).to(logits.device)]
        prob = torch.softmax(logits, 1).gather(1, want[:, None])[:, 0]
        return (logits.argmax(1) == want).cpu().numpy(), prob.cpu().numpy()
