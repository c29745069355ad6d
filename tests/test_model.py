import torch

from plategen.model import Discriminator, Generator, SAAEConfig, fold_batchnorm, fold_discriminator

TINY = dict(content_width=4, style_width=4, style_dim=8, decoder_width=4, disc_width=4, disc_hidden=16)


def test_shapes_and_what_each_input_controls():
    torch.manual_seed(0)
    config = SAAEConfig(num_classes=5, **TINY)
    G, D = Generator(config).eval(), Discriminator(config).eval()
    glyph = torch.rand(3, 1, 32, 32)
    style = torch.stack([torch.zeros(3, 32, 96), torch.ones(3, 32, 96), torch.rand(3, 32, 96)])  # dark, light, noise
    with torch.no_grad():
        code = G.encode_style(style)
        out = G.decode(glyph, code)
        assert code.shape == (3, config.style_dim)
        assert out.shape == (3, 3, 32, 32)
        assert D(out).shape == (3, config.num_classes + 1)
        # in eval mode an image depends on its own glyph and style only, not on its batch (float noise ~1e-7);
        # an untrained G moves its output little, but far above that noise, when either input changes
        assert torch.allclose(G.decode(glyph[1:2], code[1:2]), out[1:2], atol=1e-6)
        assert (G.decode(glyph, code.roll(1, 0)) - out).abs().amax(dim=(1, 2, 3)).min() > 1e-5
        assert (G.decode(glyph.roll(1, 0), code) - out).abs().amax(dim=(1, 2, 3)).min() > 1e-5


def test_paper_variant_is_reachable_and_large():
    """No pooling, no stride: the FC over the full style map is what dominates the paper's size."""
    paper = SAAEConfig(num_classes=5, style_pool=None, style_stride=1, style_width=32, style_dim=128)
    assert Generator(paper).style_fc.weight.numel() == 32 * 96 * 32 * 128
    small = SAAEConfig(num_classes=5)
    params = sum(p.numel() for m in (Generator(small), Discriminator(small)) for p in m.parameters())
    assert params * 4 < 20e6  # the shipped file (G + D, float32) fits the 20 MB budget


def test_spectral_norm_discriminator():
    D = Discriminator(SAAEConfig(num_classes=3, spectral_norm=True, **TINY))
    assert D(torch.rand(2, 3, 32, 32)).shape == (2, 4)


def test_folded_batchnorm_matches_eval():
    torch.manual_seed(0)
    G = Generator(SAAEConfig(num_classes=5, **TINY))
    G.train()
    for _ in range(3):  # move the running statistics away from their initial values
        G(torch.rand(8, 1, 32, 32), torch.rand(8, 3, 32, 96))
    G.eval()
    glyph, style = torch.rand(4, 1, 32, 32), torch.rand(4, 3, 32, 96)
    with torch.no_grad():
        assert torch.allclose(fold_batchnorm(G)(glyph, style), G(glyph, style), atol=1e-5)


def test_folded_discriminator_reads_as_eval_and_leaves_the_original_alone():
    torch.manual_seed(0)
    for spectral in (False, True):
        D = Discriminator(SAAEConfig(num_classes=5, spectral_norm=spectral, **TINY))
        D.train()
        for _ in range(3):  # move the running statistics away from their initial values
            D(torch.rand(8, 3, 32, 32))
        D.eval()
        before = {k: v.clone() for k, v in D.state_dict().items()}
        img = torch.rand(6, 3, 32, 32)
        with torch.no_grad():
            folded = fold_discriminator(D)
            assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
            assert torch.allclose(folded(img), D(img), atol=1e-5)
            assert torch.allclose(folded(img.contiguous(memory_format=torch.channels_last)), D(img), atol=1e-5)
        assert all(torch.equal(before[k], v) for k, v in D.state_dict().items())
