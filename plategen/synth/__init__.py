"""`plategen synth`: labelled character images in the style of real plates.

Read in the order one request flows: `run` (the command: checks, output folder, resume) ->
`inputs` (style plates, drawable characters) -> `plan` (pools and the seeded plan) ->
`engine` (generator, `check` the label check, noise; the library API `generate`) ->
`writers` (the locked output folder, files or shards, journal, manifest, meta, preview).
Whole plates (`--plates`) branch off in `run` to `plates` (style plates with layouts, the plan
of style, text and seed per plate, characters from the same engine, placed by `compose` on the
erased style plate) and `plate_writers` (the plategen data folder, with `exports` for the
trainer formats), reusing the lock, journal and shards above.
"""

from plategen.synth.engine import Batch, Synthesizer, generate, generate_arrays
from plategen.synth.inputs import Style, check_drawable, load_styles
from plategen.synth.plan import Diversity, label_counts
from plategen.synth.run import SynthReport, SynthRequest, synthesize, within_class_diversity

__all__ = ["Batch", "Diversity", "Style", "SynthReport", "SynthRequest", "Synthesizer", "check_drawable",
           "generate", "generate_arrays", "label_counts", "load_styles", "synthesize",
           "within_class_diversity"]
