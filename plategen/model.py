"""The Stylized Adversarial AutoEncoder (Zhao et al., ACM MM): a generator that draws a content
glyph in the style of a real plate, and a (k+1)-class discriminator.

Pure: no I/O. Every size lives in `SAAEConfig`, which the checkpoint stores as JSON.

Generator (paper layout):
    glyph [B,1,S,S] --3 convs, no downsampling--> content map [B,C,S,S]
    plate [B,3,Hs,Ws] --3 convs, no downsampling, pool--> FC --> style code [B,D]
    code --FC--> style map [B,C,m,m] --upsample--> [B,C,S,S]   (same size as the content map)
    concat (half content, half style) --3 convs--> RGB [B,3,S,S], sigmoid
Every conv is conv -> BN -> leaky ReLU (the last: conv -> BN -> sigmoid), so inference can
fold BN into the conv. Departures from the paper are options whose paper value is noted.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from plategen.sizes import GLYPH_SIZE, STYLE_SIZE


@dataclass(frozen=True)
class SAAEConfig:
    num_classes: int  # k real character classes; the discriminator has k+1 outputs
    glyph_size: int = GLYPH_SIZE  # S: content glyphs and generated images are S x S
    style_size: tuple[int, int] = STYLE_SIZE  # H, W of the whole-plate style input
    content_width: int = 16  # channels of the content encoder; the style map has as many
    style_width: int = 16  # channels of the style encoder convs
    style_dim: int = 64  # length of the style code
    style_stride: int = 2  # stride of the first style conv; 1 = the paper (no downsampling), 2 = 4x less work
    # Grid the style map is average-pooled to before the FC. The paper has no pooling (None),
    # which makes the FC 32*96*C*D weights (12.6M at C=32, D=128); a 4x12 grid keeps the plate's
    # layout (left/right, top/bottom) at 1/64 of the weights.
    style_pool: tuple[int, int] | None = (4, 12)
    # Side of the map the style code is mapped to (then upsampled to S x S). The paper maps it to
    # the full map (= glyph_size). A coarse map (e.g. 4) was meant to stop G painting ghosts of the
    # style plate's own characters, but measured worse (TSTR 92.5% vs 93.6%, real reads generated
    # 80% vs 87%; checkpoints/README.md), so the paper's full map is the default.
    style_map_size: int = 32
    decoder_width: int = 16
    disc_width: int = 16  # first conv; the other two have twice as many channels
    disc_hidden: int = 128  # units of the first FC layer
    spectral_norm: bool = False  # on the discriminator (the paper: False, it uses BN)
    leak: float = 0.2
    # A model trained on content glyphs narrowed to their crop's box (`glyphs.render_glyph` width; a font's M or W is up
    # to twice as wide as a plate's, and a model that had to squeeze them drew them blotched) gets them so in synth
    # too: each to its slot's box on whole plates, to this box width / height (the median of its training crops') for
    # single characters. None: glyphs as drawn (every checkpoint written before the field).
    glyph_aspect: float | None = None

    def to_dict(self) -> dict:
        """The fields, without a `glyph_aspect` of None: a model trained on glyphs as drawn stays readable by a
        plategen from before the field, whose loader refuses unknown fields."""
        return {k: v for k, v in asdict(self).items() if not (k == "glyph_aspect" and v is None)}

    @classmethod
    def from_dict(cls, data: dict) -> "SAAEConfig":
        data = dict(data)
        data["style_size"] = tuple(data["style_size"])
        if data.get("style_pool") is not None:
            data["style_pool"] = tuple(data["style_pool"])
        return cls(**data)


def conv_bn(cin: int, cout: int, leak: float | None, stride: int = 1) -> nn.Sequential:
    """3x3 conv -> BN -> leaky ReLU (or no activation when `leak` is None); bias-free since BN follows."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False), nn.BatchNorm2d(cout)]
    if leak is not None:
        layers.append(nn.LeakyReLU(leak))
    return nn.Sequential(*layers)


class Generator(nn.Module):
    def __init__(self, config: SAAEConfig):
        super().__init__()
        self.config = c = config
        cw, sw = c.content_width, c.style_width
        self.content = nn.Sequential(conv_bn(1, cw, c.leak), conv_bn(cw, cw, c.leak), conv_bn(cw, cw, c.leak))
        self.style = nn.Sequential(conv_bn(3, sw, c.leak, c.style_stride), conv_bn(sw, sw, c.leak), conv_bn(sw, sw, c.leak))
        grid = c.style_pool or tuple(-(-n // c.style_stride) for n in c.style_size)
        self.style_fc = nn.Linear(sw * grid[0] * grid[1], c.style_dim)
        self.style_map = nn.Linear(c.style_dim, cw * c.style_map_size * c.style_map_size)
        self.decoder = nn.Sequential(conv_bn(2 * cw, c.decoder_width, c.leak),
                                     conv_bn(c.decoder_width, c.decoder_width, c.leak),
                                     conv_bn(c.decoder_width, 3, None))

    def encode_style(self, style: Tensor) -> Tensor:
        """Plate [B,3,Hs,Ws] in [0,1] -> style code [B,D]; compute once per style and reuse."""
        h = self.style(style)
        if self.config.style_pool is not None:
            h = F.adaptive_avg_pool2d(h, self.config.style_pool)
        return self.style_fc(h.flatten(1))

    def decode(self, glyph: Tensor, code: Tensor) -> Tensor:
        """Glyph [B,1,S,S] in [0,1] (ink = 1) and code [B,D] -> image [B,3,S,S] in [0,1]."""
        c = self.config
        style_map = F.leaky_relu(self.style_map(code), c.leak).view(-1, c.content_width, c.style_map_size, c.style_map_size)
        if c.style_map_size != c.glyph_size:
            style_map = F.interpolate(style_map, size=(c.glyph_size, c.glyph_size), mode="bilinear", align_corners=False)
        return torch.sigmoid(self.decoder(torch.cat([self.content(glyph), style_map], dim=1)))

    def forward(self, glyph: Tensor, style: Tensor) -> Tensor:
        return self.decode(glyph, self.encode_style(style))


class Discriminator(nn.Module):
    """Three convs (2x2 max-pool after the first), two FC layers, k+1 logits (index k = generated)."""

    def __init__(self, config: SAAEConfig):
        super().__init__()
        c = config
        w = c.disc_width
        sn = nn.utils.parametrizations.spectral_norm if c.spectral_norm else (lambda m: m)
        self.features = nn.Sequential(
            conv_bn(3, w, c.leak), nn.MaxPool2d(2), conv_bn(w, 2 * w, c.leak), conv_bn(2 * w, 2 * w, c.leak))
        if c.spectral_norm:  # spectral norm replaces BN: the Lipschitz bound is the point
            for block in self.features:
                if isinstance(block, nn.Sequential):
                    block[0] = sn(block[0])
                    block[1] = nn.Identity()
        side = c.glyph_size // 2
        self.hidden = nn.Sequential(sn(nn.Linear(2 * w * side * side, c.disc_hidden)), nn.LeakyReLU(c.leak))
        self.out = sn(nn.Linear(c.disc_hidden, c.num_classes + 1))

    def features_of(self, img: Tensor) -> Tensor:
        """The hidden FC activations, for feature matching."""
        return self.hidden(self.features(img).flatten(1))

    def forward(self, img: Tensor) -> Tensor:
        return self.out(self.features_of(img))


class PointwiseLinear(nn.Module):
    """A Linear computed as a 1x1 convolution, for inference. On some CPUs (Intel, AVX-512) a Linear's
    float sums depend on the number of torch threads and a 1x1 convolution's do not, so synth writes
    the same bytes on 1 thread or 2."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.weight = nn.Parameter(linear.weight.detach().clone()[:, :, None, None], requires_grad=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x[:, :, None, None], self.weight, self.bias).flatten(1)


@torch.no_grad()
def fold_batchnorm(generator: Generator) -> Generator:
    """An inference copy with every BN folded into the conv before it and the Linears as `PointwiseLinear`
    (same outputs in eval mode up to float rounding)."""
    folded = Generator(generator.config)
    folded.load_state_dict(generator.state_dict())
    folded.eval()
    for seq in (folded.content, folded.style, folded.decoder):
        for i, block in enumerate(seq):
            seq[i] = _fold_block(block)
    folded.style_fc, folded.style_map = PointwiseLinear(folded.style_fc), PointwiseLinear(folded.style_map)
    return folded


@torch.no_grad()
def fold_discriminator(discriminator: Discriminator) -> Discriminator:
    """An inference copy with BN folded into the convs, in-place activations and the Linears as
    `PointwiseLinear` (the same outputs in eval mode up to float rounding, ~1e-5 in the logits);
    spectral-norm convs stay as they are (their Linears take the normalised weights)."""
    folded = copy.deepcopy(discriminator).eval()
    for i, block in enumerate(folded.features):
        if isinstance(block, nn.Sequential) and isinstance(block[1], nn.BatchNorm2d):
            folded.features[i] = _fold_block(block)
    for module in folded.modules():
        if isinstance(module, nn.LeakyReLU):
            module.inplace = True
    folded.hidden[0], folded.out = PointwiseLinear(folded.hidden[0]), PointwiseLinear(folded.out)
    return folded


def _fold_block(block: nn.Sequential) -> nn.Sequential:
    """conv -> BN -> rest as one conv with bias -> rest."""
    conv, bn = block[0], block[1]
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, 3, conv.stride, padding=1, bias=True)
    fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    fused.bias.copy_(bn.bias - bn.running_mean * scale)
    return nn.Sequential(fused, *block[2:])
