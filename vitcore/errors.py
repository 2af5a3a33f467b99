"""Typed errors raised by the runtime core and the build. The service maps them to HTTP status codes."""

from __future__ import annotations


class VitserveError(Exception):
    """Base class for every error this project raises on purpose."""


class DatasetUnavailableError(VitserveError):
    """The dataset can be reached neither on the hub nor as a local folder."""


class BaseModelError(VitserveError):
    """The base model source is invalid or cannot be loaded."""


class InvalidImageError(VitserveError):
    """Bytes that are not a decodable image."""


class UnsupportedImageFormatError(InvalidImageError):
    """A decodable image in a format the service does not accept."""


class ImageTooLargeError(InvalidImageError):
    """An image over the pixel limit (or a decompression bomb), refused before it is decoded."""


class UnknownVariantError(VitserveError):
    """A variant name that is not in the registry or manifest."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown variant {name!r}; known variants: {', '.join(known)}")
        self.name = name
        self.known = known


class VariantUnavailableError(VitserveError):
    """A registered variant that is not built, or whose runtime or artifact failed to load."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"variant {name!r} is unavailable: {reason}")
        self.name = name
        self.reason = reason


class ArtifactIntegrityError(VitserveError):
    """A file listed in the manifest is missing or its sha256 does not match."""


class ManifestError(VitserveError):
    """The manifest is missing or malformed."""


class BuildError(VitserveError):
    """A variant failed to build."""
