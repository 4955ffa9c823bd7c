"""The one base class of the app's expected failures.

Every error the engine raises on purpose (a bad photo, a busy library, missing
weights, a fine-tuning that cannot run) subclasses :class:`FaceAppError`, so a
front end catches one class and shows ``str(err)`` as one line; anything else is
a bug and keeps its traceback. This module imports nothing heavy: the CLI uses it
before it knows which command will run.
"""

from __future__ import annotations


class FaceAppError(Exception):
    """An expected failure; ``str(err)`` is a short reason for the user.

    ``exit_code`` is the status the command line exits with.
    """

    exit_code: int = 1
