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


class InvalidDatabaseURL(RegistryError, ValueError):
    """The database URL cannot be parsed, names an unsupported backend or a missing driver."""


class RegistryClosed(RegistryError):
    """The registry handle was closed; open a new :class:`~registry.core.Registry`."""


class SchemaMismatch(RegistryError):
    """The database schema is not at this code's head revision; both revisions are fields."""

    def __init__(
        self, message: str, database_revision: str | None, code_revision: str | None
    ) -> None:
        super().__init__(message)
        self.database_revision = database_revision
        self.code_revision = code_revision


class SchemaNotMigrated(SchemaMismatch):
    """The database schema is older than this code (or absent) and migrating was not allowed."""

    def __init__(
        self, database_revision: str | None, code_revision: str | None, url: str | None = None
    ) -> None:
        where = f"database {url}" if url else "the database"
        super().__init__(
            f"{where} is at schema revision {database_revision or 'none'}, this code "
            f"needs {code_revision}: run `python -m registry migrate`",
            database_revision,
            code_revision,
        )


class SchemaTooNew(SchemaMismatch):
    """The database schema is at a revision this code does not know (a newer release wrote it).

    Never migrated or downgraded automatically: the code must be upgraded.
    """

    def __init__(self, database_revision: str, code_revision: str | None) -> None:
        super().__init__(
            f"the database schema is newer than this code ({database_revision} > "
            f"{code_revision}): upgrade the code",
            database_revision,
            code_revision,
        )


class ArtifactVerificationFailed(PromotionError):
    """A promotion or rollback was refused because the target's artifact failed verification
    (sha256 mismatch, row missing, untrusted types or not loadable). ``cause`` is that error."""

    def __init__(self, model_name: str, version: int, action: str, cause: RegistryError) -> None:
        self.model_name = model_name
        self.version = version
        self.action = action
        self.cause = cause
        super().__init__(
            f"{action} of {model_name} v{version} refused: {type(cause).__name__}: {cause}"
        )
