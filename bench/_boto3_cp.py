"""boto3's managed transfer as a child process, so the benchmark measures its wall time, peak RSS
and CPU the same way as every other tool's (wait4):

    python bench/_boto3_cp.py up|down ENDPOINT BUCKET KEY FILE

Default TransferConfig (8 MiB parts, 10 threads) and boto3's default checksum behaviour; the
credentials come from the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
"""

from __future__ import annotations

import sys

import boto3
from botocore.config import Config


def main() -> None:
    direction, endpoint, bucket, key, path = sys.argv[1:6]
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )
    if direction == "up":
        client.upload_file(path, bucket, key)
    else:
        client.download_file(bucket, key, path)


if __name__ == "__main__":
    main()
