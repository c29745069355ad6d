"""`python -m plategen ...` runs the CLI (torchrun launches it this way)."""

from plategen.cli import app

app(prog_name="plategen")
