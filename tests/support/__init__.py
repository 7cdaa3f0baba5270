"""Shared test support: catalog and photo builders, platform exports, HTTP servers, free ports, the labelled quality set."""
