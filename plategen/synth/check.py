"""The label check: the checkpoint's discriminator reads each generated image.

An image read as another character, or as its own with less than `CHECK_SURE` probability, is drawn
again, up to `CHECK_ATTEMPTS` times, with (glyph variant, style entry) pairs the plan set aside for
it; the best-read attempt is kept and the manifest says whether it is read as its label. The
"generated" output of the k+1 head is ignored.
A character outside the checkpoint's charset (no class) cannot be read: it is drawn once and
marked "unchecked". A class need not have had real crops: training tops scarce classes up with
rendered pairs (`train.top_up_with_rendered`), so the manifest lists those that had real crops.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from plategen.model import fold_discriminator

CPU_CHUNK = 64  # images per pass of the label check and of the engine's split decoder on CPU
UNCHECKED = "unchecked"


def chars_with_real_crops(chars: list[str], meta: dict, routed: Sequence[str] = (), routed_meta: dict | None = None
                          ) -> list[str] | None:
    """The requested characters the checkpoint saw real crops of: its data summary's classes with
    any (a checkpoint without one: its charset, as before rendered pairs every class had real
    crops). None: no charset stored. The `routed` characters are drawn by another model, whose meta is
    `routed_meta` (`engine.chinese_routes`)."""
    real = meta.get("data", {}).get("crops_per_class")
    if real is not None:
        own = [c for c in chars if real.get(c, 0) > 0]
    elif meta.get("charset") is not None:
        own = [c for c in chars if c in meta["charset"]]
    else:
        return None
    if not routed or routed_meta is None:
        return own
    theirs = chars_with_real_crops([c for c in chars if c in routed], routed_meta) or []
    return [c for c in chars if (c in theirs if c in routed else c in own)]


class LabelCheck:
    """The checkpoint's discriminator as a reader of generated images (its k class outputs).

    Speed: BN is folded into the convs (`fold_discriminator`); on CPU the images are read
    channels-last, as the engine makes them, in chunks of `CPU_CHUNK` that stay in cache.
    """

    def __init__(self, discriminator: nn.Module, charset: Sequence[str], chars: Sequence[str], device: torch.device):
        """`charset`: the discriminator's classes; `chars`: the run's labels, in the plan's order."""
        self.model = fold_discriminator(discriminator).to(device)
        self.chunk = CPU_CHUNK if device.type == "cpu" else 0
        if self.chunk:
            self.model = self.model.to(memory_format=torch.channels_last)
        index = {c: i for i, c in enumerate(charset)}
        self.classes = torch.as_tensor([index.get(c, -1) for c in chars], device=device)

    @torch.inference_mode()
    def read(self, images: Tensor, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """images [B,3,S,S] in 0-255, labels [B] into the run's chars -> (read as the label, its
        probability among the k real classes). An unchecked label counts as read (probability 1),
        so it is never drawn again."""
        want = self.classes[torch.from_numpy(labels).to(self.classes.device)]
        known = want >= 0
        passed = torch.ones(len(labels), dtype=torch.bool, device=want.device)
        prob = torch.ones(len(labels), device=want.device)
        if bool(known.any()):
            x = images if bool(known.all()) else images[known]
            step = self.chunk or len(x)
            logits = torch.cat([self.model(x[a:a + step] / 255) for a in range(0, len(x), step)])[:, :-1].float()
            passed[known] = logits.argmax(1) == want[known]
            prob[known] = torch.softmax(logits, 1).gather(1, want[known][:, None])[:, 0]
        return passed.cpu().numpy(), prob.cpu().numpy()

    def verdicts(self, passed: np.ndarray, labels: np.ndarray) -> list[str]:
        """The manifest's `check` column: "pass", "fail", or "unchecked" for a label without a class."""
        known = (self.classes[torch.from_numpy(labels).to(self.classes.device)] >= 0).cpu().numpy()
        return [("pass" if ok else "fail") if k else UNCHECKED for ok, k in zip(passed, known)]


class SplitCheck:
    """Two label checks in one run, each reading the labels its own model draws: `routed` [len(chars)] bool
    marks the labels `other` reads (`engine.chinese_routes`: the Chinese characters, drawn by allchars)."""

    def __init__(self, main: LabelCheck, other: LabelCheck, routed: np.ndarray):
        self.main, self.other, self.routed = main, other, routed

    def read(self, images: Tensor, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        passed, prob = np.zeros(len(labels), bool), np.zeros(len(labels), np.float32)
        for check, rows in self._parts(labels):
            passed[rows], prob[rows] = check.read(images[torch.from_numpy(rows).to(images.device)], labels[rows])
        return passed, prob

    def verdicts(self, passed: np.ndarray, labels: np.ndarray) -> list[str]:
        verdicts = [""] * len(labels)
        for check, rows in self._parts(labels):
            for row, verdict in zip(rows.tolist(), check.verdicts(passed[rows], labels[rows])):
                verdicts[row] = verdict
        return verdicts

    def _parts(self, labels: np.ndarray) -> list[tuple[LabelCheck, np.ndarray]]:
        routed = self.routed[labels]
        return [(check, rows) for check, rows in ((self.main, np.flatnonzero(~routed)),
                                                  (self.other, np.flatnonzero(routed))) if len(rows)]
