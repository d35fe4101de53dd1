"""Prompt texts for the planner, one file per prompt, loaded with importlib.resources."""
