"""A dimension's CSV by URL and checksum: downloaded once into the data directory, verified, never fetched again
while a valid copy is there. No torch imports.

A download goes to a temporary name beside the destination and is renamed into place only after its sha256
matches, so a truncated or wrong file is never kept and never read.
"""

from __future__ import annotations

import http.client
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from trusttrace.errors import TrustTraceError
from trusttrace.io import file_sha256

log = logging.getLogger(__name__)
CHUNK = 1 << 20


def fetch_verified(url: str, sha256: str, destination: str | Path, timeout: float = 60.0) -> Path:
    """``destination`` holding the file at ``url`` whose sha256 is ``sha256`` (64 hex digits).

    Present and valid: returned as is, nothing is fetched. Present but different: fetched again (the old copy is
    replaced only by a verified one). Unreachable (offline): one error naming the URL and where to put the file.
    A download whose checksum differs (truncated, or another file): one error; it is deleted.
    """
    destination = Path(destination)
    expected = sha256.lower()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise TrustTraceError(f"sha256 for {url} must be 64 hex digits, got {sha256!r}")
    if destination.is_file():
        if file_sha256(destination) == expected:
            return destination
        log.warning("%s: sha256 differs from the config; fetching %s again", destination, url)
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.download")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(temporary, "wb") as out:
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        temporary.unlink(missing_ok=True)
        reason = getattr(error, "reason", error)
        raise TrustTraceError(
            f"cannot download {url} ({reason}); offline? put the file at {destination} (sha256 {expected})"
        ) from None
    actual = file_sha256(temporary)
    if actual != expected:
        size = temporary.stat().st_size
        temporary.unlink()
        raise TrustTraceError(
            f"{url}: downloaded {size} bytes with sha256 {actual}, expected {expected} (truncated or changed "
            f"upstream); nothing was kept at {destination}"
        )
    os.replace(temporary, destination)
    return destination


def local_or_fetched(csv: str | Path, url: str | None = None, sha256: str | None = None) -> Path:
    """A dimension's CSV path: as configured, or (with ``url``) fetched there and verified first."""
    if url is None:
        return Path(csv)
    return fetch_verified(url, sha256, csv)
