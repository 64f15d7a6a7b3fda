"""Errors meant for people: what was wrong and what to do about it.

``InputError`` is raised for every bad input a user can fix (an unreadable audio file, a silent recording, a
picture that is not an image, ...); the pipeline, CLI and app catch it and show its message as is, never a
traceback. ``SetupError`` is for a missing optional package or missing model weights; its message names what to
install or download.
"""


class InputError(ValueError):
    """A user-supplied input cannot be used; the message says why and what to do instead."""


class AudioInputError(InputError):
    """The audio input is unusable (unreadable, not audio, empty, silent, too long)."""


class ImageInputError(InputError):
    """The portrait input is unusable (not an image, corrupt, too small, absurdly large)."""


class SetupError(RuntimeError):
    """An optional package or model weights are missing; the message says how to get them."""
