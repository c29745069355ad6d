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


class LabelCheck:
    """The checkpoint's discriminator as a reader of generated images (its k class outputs)."""

    def __init__(self, discriminator: nn.Module, classes: Sequence[int], device: torch.device):
        self.model = discriminator.to(device).eval()
        self.classes = torch.as_tensor(list(classes), device=device)

    @torch.inference_mode()
    def read(self, images: Tensor, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """images [B,3,S,S] in 0-255, labels [B] into the run's chars -> (read as the label, its
        probability among the k real classes)."""
        logits = self.model(images / 255)[:, :-1].float()
        want = self.classes[torch.from_numpy(labels).to(logits.device)]
        prob = torch.softmax(logits, 1).gather(1, want[:, None])[:, 0]
        return (logits.argmax(1) == want).cpu().numpy(), prob.cpu().numpy()

