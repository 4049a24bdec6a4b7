"""The evaluate stage: how well each artifact calls the tools."""
