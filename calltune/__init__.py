"""calltune: turn tool definitions and a few examples into a small, fast tool-calling model."""

__version__ = "0.1.0"
