"""OCI image layout (blobs, manifest, index) packed as a reproducible oci-archive tar."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oci.tarball import Blob, gzip_file, hash_file

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True)
class Layer:
    """An uncompressed layer tar and what created it (for the config history)."""

    tar: Path
    created_by: str
    gzipped: Path | None = None  # the tar already gzipped (a base shared by several images)


@dataclass(frozen=True)
class ImageConfig:
    """The runtime part of the image config."""

    entrypoint: Sequence[str]
    env: Mapping[str, str]
    labels: Mapping[str, str]
    user: str = "65534:65534"
    workdir: str = "/tmp"  # noqa: S108 (a path inside the image)


def _json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _descriptor(media_type: str, blob: Blob) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": blob.digest, "size": blob.size}


def _put_blob(layout: Path, data: bytes) -> Blob:
    tmp = layout / "blobs" / "sha256" / ".incoming"
    tmp.write_bytes(data)
    return _move_blob(layout, hash_file(tmp))


def _move_blob(layout: Path, blob: Blob) -> Blob:
    dest = layout / "blobs" / "sha256" / blob.sha256
    shutil.move(blob.path, dest)
    return Blob(path=dest, sha256=blob.sha256, size=blob.size)


def write_layout(
    layout: Path, layers: Sequence[Layer], config: ImageConfig, *, ref_name: str, epoch: int
) -> Blob:
    """Write an OCI image layout directory; returns the manifest blob."""
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    layer_blobs, diff_ids = [], []
    for layer in layers:
        diff_ids.append(hash_file(layer.tar).digest)
        incoming = layout / "blobs" / "sha256" / ".incoming.gz"
        if layer.gzipped is not None:
            shutil.copyfile(layer.gzipped, incoming)
            gz = hash_file(incoming)
        else:
            gz = gzip_file(layer.tar, incoming)
        layer_blobs.append(_move_blob(layout, gz))
    created = _iso(epoch)
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {
            "User": config.user,
            "Env": [f"{k}={v}" for k, v in config.env.items()],
            "Entrypoint": list(config.entrypoint),
            "WorkingDir": config.workdir,
            "Labels": dict(config.labels),
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": layer.created_by} for layer in layers],
    }
    config_blob = _put_blob(layout, _json(image_config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": _descriptor(MEDIA_CONFIG, config_blob),
        "layers": [_descriptor(MEDIA_LAYER, blob) for blob in layer_blobs],
        "annotations": {"org.opencontainers.image.created": created},
    }
    manifest_blob = _put_blob(layout, _json(manifest))
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [
            {
                **_descriptor(MEDIA_MANIFEST, manifest_blob),
                "annotations": {"org.opencontainers.image.ref.name": ref_name},
            }
        ],
    }
    (layout / "index.json").write_bytes(_json(index))
    (layout / "oci-layout").write_bytes(_json({"imageLayoutVersion": "1.0.0"}))
    return manifest_blob


def pack_archive(layout: Path, out: Path, *, epoch: int) -> None:
    """Pack a layout directory as an oci-archive tar: sorted, root-owned, fixed-mtime members."""
    members = sorted(p for p in layout.rglob("*") if not p.name.startswith(".incoming"))
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in members:
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(layout)))
            info.mtime = epoch
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = 0o755 if path.is_dir() else 0o644
            if path.is_dir():
                tar.addfile(info)
            else:
                with open(path, "rb") as body:
                    tar.addfile(info, body)
