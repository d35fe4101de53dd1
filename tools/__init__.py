"""What the agent can call over the index, each a plain typed function whose
docstring is its description: ``browse``, ``search``, ``inspect``, ``ground``."""
