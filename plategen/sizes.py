"""Image sizes shared by every stage, so the glyph, crop, style and model sizes cannot drift apart; and the largest
batch any stage takes.

The checkpoint stores the sizes a model was trained with (`SAAEConfig`); these are the defaults
a new model gets and the sizes real crops and style inputs are cut to."""

GLYPH_SIZE = 32  # content glyphs, real character crops and generated characters are this square
STYLE_SIZE = (32, 96)  # height, width of the whole-plate style input
MAX_BATCH_SIZE = 8192  # train's gpu preset takes 512; 10^8 asked the allocator for 102 GB (train), 60,000 for 2.4 GB (synth)
