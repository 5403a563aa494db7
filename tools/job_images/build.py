"""Build job images from docker/Dockerfile with buildah, without a daemon, into OCI archives.

    PYTHONPATH=tools python3.11 -m job_images.build [JOB ...]    # default: every job stage

Each dist/src.python.jobs/<job>.pex (`./pants package` puts it there) becomes
dist/images/<job>.oci.tar: the Dockerfile's stage <job>, built with JOB=<job> on the local Debian
base (job_images.base) in place of the registry's python image. Builds are reproducible: the same
PEX and base give the same archive, byte for byte.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from job_images.base import base_rootfs, import_base
from job_images.storage import Storage, private_storage

DOCKERFILE = Path(__file__).resolve().parents[2] / "docker" / "Dockerfile"
# Where the Dockerfile's COPY looks, as in the context `./pants package docker:<job>` builds.
PEX_DIR = "src.python.jobs"
_STAGE = re.compile(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class BuiltImage:
    job: str
    archive: Path
    archive_sha256: str
    uncompressed_bytes: int
    seconds: float

    def summary(self) -> str:
        return (
            f"{self.job}: {self.uncompressed_bytes / 1e6:.0f} MB uncompressed, "
            f"{self.archive.stat().st_size / 1e6:.0f} MB archive ({self.archive}), "
            f"built in {self.seconds:.1f} s, sha256 {self.archive_sha256[:16]}"
        )


def job_stages(dockerfile: Path = DOCKERFILE) -> list[str]:
    """The Dockerfile's per-job stages (every stage but the shared `job` one)."""
    return [stage for stage in _STAGE.findall(dockerfile.read_text()) if stage != "job"]


def build_images(
    pexes: Sequence[Path],
    out_dir: Path,
    *,
    revision: str,
    source: str = "unknown",
    timestamp: int | None = None,
    dockerfile: Path = DOCKERFILE,
    report: Callable[[str], None] = lambda line: None,
) -> list[BuiltImage]:
    """One image per PEX (named <job>.pex), all on one base imported once; report() hears of
    the base and of each image as it is done."""
    stages = job_stages(dockerfile)
    unknown = sorted(pex.stem for pex in pexes if pex.stem not in stages)
    if unknown:
        raise ValueError(f"{dockerfile} has no stage for {', '.join(unknown)}")
    epoch = _timestamp() if timestamp is None else timestamp
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    tarball = base_rootfs()
    with private_storage() as storage:
        base = import_base(storage, tarball, timestamp=epoch)
        report(f"base: {base} from {tarball} in {time.monotonic() - started:.1f} s")
        args = {"BASE_IMAGE": base, "GIT_COMMIT": revision, "IMAGE_SOURCE": source}
        images = []
        for pex in pexes:
            images.append(
                _build_one(storage, dockerfile, pex, out_dir, build_args=args, timestamp=epoch)
            )
            report(images[-1].summary())
    report(f"{len(images)} image(s) in {time.monotonic() - started:.1f} s, base included")
    return images


def _build_one(
    storage: Storage,
    dockerfile: Path,
    pex: Path,
    out_dir: Path,
    *,
    build_args: dict[str, str],
    timestamp: int,
) -> BuiltImage:
    started = time.monotonic()
    job = pex.stem
    tag = f"localhost/etl-platform/{job}:latest"
    with tempfile.TemporaryDirectory(prefix="etl-image-context-") as context:
        _link_or_copy(pex, Path(context) / PEX_DIR / pex.name)
        args = {**build_args, "JOB": job}
        flags = [f"--build-arg={name}={value}" for name, value in args.items()]
        command = ["build", "--quiet", "--isolation=chroot", f"--timestamp={timestamp}"]
        command += ["--identity-label=false", "--layers=false", f"--file={dockerfile}"]
        command += [f"--target={job}", f"--tag={tag}", *flags, context]
        storage.run_buildah(*command, timeout=1800)
    archive = out_dir / f"{job}.oci.tar"
    with tempfile.TemporaryDirectory(prefix="etl-image-layout-") as layout:
        storage.run_buildah("push", "--quiet", tag, f"oci:{layout}:etl-platform/{job}:latest")
        _write_archive(Path(layout), archive, mtime=timestamp)
    # vfs keeps a full copy of the tree per layer: drop the image and its `job` stage now, so the
    # storage holds the base and one image at a time (~0.6 GB), not all of them.
    storage.run_buildah("rmi", tag)
    storage.run_buildah("rmi", "--prune")
    return BuiltImage(
        job=job,
        archive=archive,
        archive_sha256=_sha256(archive),
        uncompressed_bytes=uncompressed_bytes(archive),
        seconds=time.monotonic() - started,
    )


def uncompressed_bytes(archive: Path) -> int:
    """The image's layers, unpacked: what it takes on a node's disk."""
    total = 0
    with tarfile.open(archive) as oci:

        def blob(digest: str) -> bytes:
            member = oci.extractfile(f"blobs/{digest.replace(':', '/')}")
            assert member is not None, digest
            return member.read()

        index = json.loads(oci.extractfile("index.json").read())  # type: ignore[union-attr]
        manifest = json.loads(blob(index["manifests"][0]["digest"]))
        for layer in manifest["layers"]:
            member = oci.extractfile(f"blobs/{layer['digest'].replace(':', '/')}")
            assert member is not None, layer["digest"]
            stream = gzip.GzipFile(fileobj=member) if "gzip" in layer["mediaType"] else member
            while chunk := stream.read(1 << 20):
                total += len(chunk)
    return total


def _write_archive(layout: Path, archive: Path, *, mtime: int) -> None:
    """The OCI layout as a tar with fixed names, order, owners and times (buildah's own
    oci-archive: stamps the current time on every entry, so two builds would differ)."""

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "", ""
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    partial = archive.with_suffix(".partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(layout.rglob("*")):
            tar.add(
                path, arcname=path.relative_to(layout).as_posix(), recursive=False, filter=normalise
            )
    partial.replace(archive)


def _timestamp() -> int:
    """SOURCE_DATE_EPOCH when set (reproducible-builds.org), else the epoch."""
    return int(os.environ.get("SOURCE_DATE_EPOCH", "0"))


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard links where possible: a PEX is a file, or a directory in the packed layout."""
    target.parent.mkdir(parents=True)
    if source.is_dir():
        try:
            shutil.copytree(source, target, copy_function=os.link)
        except OSError:
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target)
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="job_images.build", description=__doc__.split("\n")[0])
    parser.add_argument("jobs", nargs="*", metavar="JOB", help="default: every job stage")
    parser.add_argument("--pex-dir", type=Path, default=Path("dist") / PEX_DIR)
    parser.add_argument("--out-dir", type=Path, default=Path("dist/images"))
    parser.add_argument("--revision", default="unknown", help="org.opencontainers.image.revision")
    parser.add_argument("--source", default="unknown", help="org.opencontainers.image.source")
    args = parser.parse_args(argv)
    pexes = [args.pex_dir / f"{job}.pex" for job in args.jobs or job_stages()]
    missing = [str(pex) for pex in pexes if not pex.exists()]
    if missing:
        print(
            f"job_images.build: no PEX at {', '.join(missing)}: package them first with "
            "`./pants package --filter-target-type=-docker_image ::`",
            file=sys.stderr,
        )
        return 2
    try:
        build_images(
            pexes,
            args.out_dir,
            revision=args.revision,
            source=args.source,
            report=lambda line: print(line, flush=True),
        )
    except (ValueError, RuntimeError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or ""
        print(f"job_images.build: {error}\n{detail}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
