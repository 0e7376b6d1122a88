"""The ``gdrive`` backend: Google Drive through pydrive2. Importing it imports pydrive2, so only
``open_provider`` does, for a gdrive remote."""

from providers.gdrive.provider import DriveProvider

__all__ = ["DriveProvider"]
