"""Errors a user can fix by changing the model configuration."""


class ModelConfigError(ValueError):
    """A backbone name, weights file or task/head pairing is wrong; the message names it and the fix."""
