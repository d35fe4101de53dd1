"""What an agent can call over the index. Today: hybrid search (``tools.search``)."""
