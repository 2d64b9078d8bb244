"""Exceptions raised by the model registry (all derive from :class:`RegistryError`)."""

from __future__ import annotations


class RegistryError(Exception):
    """Base class for every registry error."""


class VersionNotFound(RegistryError, LookupError):
    """The requested model name or version does not exist."""


class ArtifactTampered(RegistryError):
    """The stored artifact bytes do not match the sha256 recorded at registration."""


class ArtifactRefused(RegistryError):
    """The artifact references types outside the trusted list, so it is not deserialised."""


class ArtifactMissing(RegistryError):
    """The version exists but its artifact row is gone."""


class PromotionError(RegistryError):
    """A promotion or rollback cannot be carried out."""


class ImmutableVersionError(RegistryError):
    """Something tried to change a registered version's content (only its stage may change)."""
