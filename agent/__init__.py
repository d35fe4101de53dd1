"""The question-answering planner loop (LangGraph) and its Answer; arrives with `vdisc ask`."""
