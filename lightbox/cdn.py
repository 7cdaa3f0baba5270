"""CloudFront invalidation of the paths a run changed (boto3).

Enabled by ``LIGHTBOX_CLOUDFRONT_DISTRIBUTION`` (the distribution id); ``LIGHTBOX_CLOUDFRONT_PREFIX``
is the path under which the output root is served (default ``/``), ``LIGHTBOX_CLOUDFRONT_ENDPOINT_URL``
points at a non-AWS endpoint (tests). Credentials: the usual AWS variables.

Every object this run *wrote* or retired (deleted: a photo the catalog dropped) is invalidated (an overwritten image is cached at the edge; a new one
may be cached as a 404 if someone asked for it early); unchanged objects are not. CloudFront takes at most 3000 paths per invalidation; above ``max_paths`` the run invalidates
one wildcard per brand instead. The caller reference is derived from the run id and the paths, so a
retried task does not create a second invalidation (CloudFront returns the first).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from lightbox.errors import StorageError, TransientError


@dataclass
class CdnConfig:
    distribution_id: str
    prefix: str = "/"
    endpoint_url: str | None = None
    max_paths: int = 1000

    @classmethod
    def from_env(cls) -> CdnConfig | None:
        dist = os.environ.get("LIGHTBOX_CLOUDFRONT_DISTRIBUTION")
        if not dist:
            return None
        return cls(distribution_id=dist, prefix=os.environ.get("LIGHTBOX_CLOUDFRONT_PREFIX", "/"),
                   endpoint_url=os.environ.get("LIGHTBOX_CLOUDFRONT_ENDPOINT_URL") or None)


def invalidation_paths(keys: list[str], brand: str, config: CdnConfig) -> list[str]:
    prefix = "/" + config.prefix.strip("/")
    prefix = "" if prefix == "/" else prefix
    paths = sorted({f"{prefix}/{k.lstrip('/')}" for k in keys})
    if len(paths) > config.max_paths:
        return [f"{prefix}/{brand}/*"]
    return paths


def invalidate(keys: list[str], brand: str, run_id: str, config: CdnConfig) -> str | None:
    """Create one invalidation for ``keys`` (relative to the output root); returns its id, None if no keys."""
    if not keys:
        return None
    import boto3
    import botocore.exceptions

    paths = invalidation_paths(keys, brand, config)
    ref = f"lightbox-{run_id}-" + hashlib.sha256("\n".join(paths).encode()).hexdigest()[:16]
    client = boto3.client("cloudfront", endpoint_url=config.endpoint_url, region_name="us-east-1")
    try:
        resp = client.create_invalidation(
            DistributionId=config.distribution_id,
            InvalidationBatch={"Paths": {"Quantity": len(paths), "Items": paths}, "CallerReference": ref},
        )
    except botocore.exceptions.ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code in ("Throttling", "ServiceUnavailable", "TooManyInvalidationsInProgress"):
            raise TransientError(f"cloudfront {config.distribution_id}: {code}") from e
        raise StorageError(f"cloudfront {config.distribution_id}: cannot invalidate: {code or e}") from e
    except botocore.exceptions.EndpointConnectionError as e:
        raise TransientError(f"cloudfront: {e}") from e
    return resp["Invalidation"]["Id"]
