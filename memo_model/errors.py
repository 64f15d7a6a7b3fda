"""Errors meant for people: what was wrong and what to do about it.

``InputError`` is raised for every bad input a user can fix (an unreadable audio file, a silent recording, a
picture that is not an image, ...); the pipeline, CLI and app catch it and show its message as is, never a
traceback. ``SetupError`` is for a missing optional package or missing model weights; its message names what to
install or download. ``shown`` quotes a value in such a message, cut short.
"""

import reprlib

QUOTED_CHARS = 80  # a value quoted in a message is cut to about this many characters


class InputError(ValueError):
    """A user-supplied input cannot be used; the message says why and what to do instead."""


class AudioInputError(InputError):
    """The audio input is unusable (unreadable, not audio, empty, silent, too long)."""


class ImageInputError(InputError):
    """The portrait input is unusable (not an image, corrupt, too small, absurdly large)."""


class SetupError(RuntimeError):
    """An optional package or model weights are missing; the message says how to get them."""


def _brief_repr() -> reprlib.Repr:
    brief = reprlib.Repr()
    brief.maxstring = brief.maxother = QUOTED_CHARS
    brief.maxlist = brief.maxtuple = brief.maxdict = brief.maxset = 4
    brief.maxlevel = 2
    return brief


_BRIEF = _brief_repr()


def shown(value) -> str:
    """A value as a message quotes it: numbers as numbers (``2147483647``, ``1e+308``, ``nan``), anything else as
    its repr cut short — a settings file or an API call may hold a 10 MB string or deeply nested lists."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, int) and abs(value) < 10**15:
            return str(value)
        try:
            return f"{value:g}"
        except OverflowError:  # an integer beyond the largest float
            return "an enormous number"
    return _BRIEF.repr(value)
