"""Algorithms that ship with algo-mcp and fill the default ``algorithms.yaml``."""
