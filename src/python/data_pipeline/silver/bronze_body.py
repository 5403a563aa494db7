"""A bronze object's body as NDJSON text: gunzipped when it is gzip, or unreadable as a whole.

Apart from the transform (file_transform) so that a run that reads bodies without transforming
them (corrected_bronze) does not import Arrow.
"""

from __future__ import annotations

import gzip
import zlib

from etl_core.errors import DataError

__all__ = ["UnreadableFile", "decompress"]

_GZIP_MAGIC = b"\x1f\x8b"


class UnreadableFile(DataError):
    """A bronze object whose body cannot be read as NDJSON at all: gzip that ends early, carries
    trailing garbage or fails its checksum. The message is the decoder's error."""


def decompress(body: bytes) -> bytes:
    """The NDJSON text of a bronze object, gunzipped when it is gzip (by magic, not by name).

    Raises UnreadableFile when the gzip is broken anywhere: a file is read whole or not at all.
    """
    if body[:2] != _GZIP_MAGIC:
        return body
    try:
        return gzip.decompress(body)
    except (EOFError, OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise UnreadableFile(f"{type(exc).__name__}: {exc}") from None
