"""The question-answering agent: a LangGraph plan -> act loop (``graph``), its two
planners (``llm``, ``offline``), the tools as the graph sees them (``toolbox``)
and the ``Answer`` it produces."""
