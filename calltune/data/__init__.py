"""Data stages: validate user tools and examples into the canonical dataset, then split it.

tools.py (tool definitions), examples.py (hand-written examples), templates.py (slot
expansion), importers/ (public formats), generate.py (all of it into canonical records),
stats.py (metrics of a dataset), neardup.py + split.py (leak-free train/valid/test).
"""
