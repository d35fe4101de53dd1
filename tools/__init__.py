"""What the agent can call over the index: plain typed functions whose docstrings are their descriptions.

``browse`` (``browse.py``), ``search`` (``search.py``), ``inspect`` (``zoom.py``:
zoom-in inspection of a window; the module is not named after the tool so that
it does not shadow the standard library's ``inspect``) and ``ground``
(``ground.py``); ``context.py`` and ``evidence.py`` hold what they share.
"""
