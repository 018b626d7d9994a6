"""Errors a store raises; messages name the key, never credentials."""


class StoreError(Exception):
    """Base for every storage failure."""


class ObjectNotFound(StoreError):
    pass


class ObjectExists(StoreError):
    """A create-only write found the key already present (nothing was overwritten)."""


class ObjectChanged(StoreError):
    """A compare-and-swap found the key no longer holding what the caller read (nothing was written)."""


class IntegrityError(StoreError):
    """Stored bytes do not match the sha256 recorded when they were written."""


class CorruptContent(IntegrityError):
    """An object's bytes hash to something other than its recorded sha256 (both are kept for reports)."""

    def __init__(self, key: str, recorded_sha256: str, actual_sha256: str):
        self.key = key
        self.recorded_sha256 = recorded_sha256
        self.actual_sha256 = actual_sha256
        super().__init__(f"{key} is corrupt: sha256 {actual_sha256} does not match recorded {recorded_sha256}")


class StoreUnavailable(StoreError):
    """The backend could not be reached after bounded retries."""


class StoreAuthError(StoreError):
    """The backend refused the credentials or the operation."""
