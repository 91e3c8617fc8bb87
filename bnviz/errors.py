"""The one error type for everything a user can get wrong, and its kinds.

The engine raises a `BnvizError` (a `ValueError`) whose message is one line saying what is wrong and what to do;
only `bnviz.ui` and `bnviz.cli` turn it into a message on screen. A subclass exists where a caller must tell the
cases apart. Anything else that escapes is a bug, not a user's mistake.
"""

from __future__ import annotations

import re

LINE_BREAK = re.compile(r"\s*\n\s*")


class BnvizError(ValueError):
    """A user's mistake or a limit they hit; the message (always one line) says why and what to do."""

    def __init__(self, message: object):
        # one line: each line break (with the indentation around it) becomes one space; other text stays as it is
        super().__init__(LINE_BREAK.sub(" ", str(message)).strip())


class ConfigError(BnvizError):
    """A setting is out of range or does not fit the others."""


class UserDataError(BnvizError):
    """An uploaded or named image set cannot be used."""


class DatasetUnavailable(BnvizError):
    """A dataset's files are missing, wrong or unreadable; the message says how to get them."""


class RunFileError(BnvizError):
    """A saved run (zip, folder or JSON) cannot be opened."""


class ServerBusy(BnvizError):
    """Every training slot of this server is taken."""
