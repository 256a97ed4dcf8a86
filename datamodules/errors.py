"""Errors a user can fix by changing an argument or the files on disk."""


class DatasetError(ValueError):
    """A dataset root, split or file is missing or malformed; the message names it and the fix."""
