"""Measuring vdisc the same way every time: a JSONL question format, metrics,
converters from public benchmarks, and the runner behind `vdisc eval`."""
