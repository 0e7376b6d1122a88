"""The ``s3`` backend: AWS S3 or any S3-compatible server. Importing it imports boto3, so only
``open_provider`` does, for an s3 remote."""

from providers.s3.provider import S3Provider

__all__ = ["S3Provider"]
