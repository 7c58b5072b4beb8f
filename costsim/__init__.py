"""costsim: a training-cost simulator for transformer models."""

__version__ = "0.1.0"
