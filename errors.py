"""The small error hierarchy of vdisc.

Library code raises these; only the CLI turns them into one-line messages
(set ``VDISC_DEBUG=1`` to see the traceback). Each message should say what
went wrong and, where possible, how to fix it.
"""

from __future__ import annotations


class VdiscError(Exception):
    """Base class for every error a user can cause or fix."""


class ConfigError(VdiscError):
    """A setting has a value vdisc cannot use."""


class DecodeError(VdiscError):
    """A file could not be opened or decoded as video."""


class ModelUnavailable(VdiscError):
    """A model role could not be resolved or loaded."""


class LibraryError(VdiscError):
    """The library directory or its index is missing, locked or inconsistent."""
