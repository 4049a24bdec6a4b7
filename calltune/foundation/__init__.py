"""The tool-calling foundation: the corpus, training and scoring that teach the base model to call tools."""
