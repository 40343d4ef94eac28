"""Errors a user can cause and fix; the CLI prints them as one line and exits 2."""

from __future__ import annotations


class MfdeployError(Exception):
    """Bad input from the user: a wrong name, a wrong file, a missing directory.

    Anything raised as this (or a subclass) is shown without a traceback.
    """


class UnknownVariantError(MfdeployError):
    pass


class CheckpointError(MfdeployError):
    pass


class ManifestError(MfdeployError):
    pass
