"""`python -m costsim` runs the command line."""
from .cli import app

app(prog_name="costsim")
