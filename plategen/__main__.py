"""`python -m plategen ...` runs the CLI; torchrun launches it this way:
`torchrun --nproc-per-node 2 -m plategen -- synth ...` (the `--` keeps torchrun's own parser off
plategen's options; where torchrun passes it on, it is dropped here)."""

import sys

from plategen.cli import run

if sys.argv[1:2] == ["--"]:
    del sys.argv[1]
run()
