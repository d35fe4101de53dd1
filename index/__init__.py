"""Building the library: decode, segment, the model registry, the pipeline, the store."""
