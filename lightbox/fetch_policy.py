"""Where source images may come from and how they are fetched: the fetch policy (YAML, ``--fetch-policy``),
a typed model read from outside. The client that applies it is :mod:`lightbox.fetch`."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lightbox.config import load_yaml_model

Scheme = Literal["https", "http", "s3", "file"]


class FetchPolicy(BaseModel):
    """Where source images may come from and how they are fetched. Loaded from YAML (``--fetch-policy``)."""

    model_config = ConfigDict(extra="forbid")

    schemes: list[Scheme] = Field(
        default_factory=lambda: ["https", "s3"],
        description="allowed schemes; 'file' is added for catalogs on local disk unless schemes is set",
    )
    allow_hosts: list[str] = Field(default_factory=lambda: ["*"], description="host name patterns (fnmatch)")
    deny_hosts: list[str] = Field(default_factory=list, description="host name patterns refused even if allowed")
    allow_networks: list[str] = Field(
        default_factory=list, description="CIDRs allowed although loopback/private/link-local (e.g. 127.0.0.1/32)"
    )
    max_bytes: int = Field(50_000_000, gt=0, description="largest body accepted")
    content_types: list[str] = Field(
        default_factory=lambda: ["image/jpeg", "image/png", "image/webp", "image/tiff", "image/gif", "image/bmp"]
    )
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(20.0, gt=0, description="longest wait for any single read")
    total_timeout_s: float = Field(120.0, gt=0, description="deadline for one whole body")
    retries: int = Field(3, ge=0, description="extra attempts after a transient failure")
    backoff_s: float = Field(0.5, ge=0, description="first retry delay; doubles each time")
    max_redirects: int = Field(5, ge=0)
    per_host_connections: int = Field(4, ge=1, description="parallel downloads against one host")
    parallel_downloads: int = Field(8, ge=1, description="parallel downloads per generate task")
    credentials: dict[str, str] = Field(
        default_factory=dict, description="exact host -> environment variable holding its Authorization header"
    )
    file_prefixes: list[str] | None = Field(
        None, description="when set, local files are read only inside these folders (symlinks resolved); [] forbids them")
    cache_dir: str | None = Field(None, description="default: $LIGHTBOX_CACHE_DIR, else ~/.cache/lightbox/sources")
    ca_bundle: str | None = Field(None, description="PEM file of CAs to trust for https (a private CDN); default: certifi's")
    user_agent: str = "lightbox-fetch/0.1"

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for n in v:
            try:
                ipaddress.ip_network(n, strict=False)
            except ValueError:
                raise ValueError(f"{n!r} is not a network (use CIDR, e.g. 127.0.0.1/32)") from None
        return v

    def for_catalog(self, catalog_uri: str, local_files: list[str] | None = None) -> FetchPolicy:
        """The effective policy for one catalog: plain paths are readable when the catalog is local (the
        same trust domain). ``local_files`` is for catalogs from outside (job API): local reads are
        confined to those folders, and refused altogether when it is empty."""
        if local_files is not None:
            schemes = [s for s in self.schemes if s != "file"] + (["file"] if local_files else [])
            return self.model_copy(update={"schemes": schemes, "file_prefixes": list(local_files)})
        local = "://" not in catalog_uri or catalog_uri.startswith("file://")
        if local and "schemes" not in self.model_fields_set and "file" not in self.schemes:
            return self.model_copy(update={"schemes": [*self.schemes, "file"]})
        return self

    def cache_path(self) -> Path:
        base = self.cache_dir or os.environ.get("LIGHTBOX_CACHE_DIR") or str(Path.home() / ".cache" / "lightbox")
        return Path(base).expanduser() / "sources"


def load_fetch_policy(uri: str | None) -> FetchPolicy:
    """A policy from YAML (local path or any fsspec URI); the defaults when ``uri`` is None."""
    return load_yaml_model(uri, FetchPolicy)
