"""Build per-job OCI archives without a daemon: a slim Debian python3.11 base plus the job's PEX."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from oci.layout import ImageConfig, Layer, pack_archive, write_layout
from oci.rootfs import CA_BUNDLE, PYTHON, base_rootfs
from oci.tarball import DEFAULT_EPOCH, gzip_file, hash_file, tree_entries, write_layer

# PEX caches under /tmp (an emptyDir / tmpfs): the root filesystem is read-only at run time.
# (S108: these are paths inside the image, not temporary files of this process.)
BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/tmp",  # noqa: S108
    "PEX_ROOT": "/tmp/.pex",  # noqa: S108
    "SSL_CERT_FILE": CA_BUNDLE,
    # No embedded ./.etl store or SQLite history in an image (they would be throwaway files in
    # /tmp): a job exits 2 naming what to set (etl_core.settings), unless run with --demo.
    "ETL_EMBEDDED_DEFAULTS": "off",
}
_PYCACHE = frozenset({"__pycache__"})


@dataclass(frozen=True)
class BuiltImage:
    """What one build produced, with the sizes the issue asks to report."""

    job: str
    archive: Path
    archive_sha256: str
    manifest_digest: str
    compressed_bytes: int
    uncompressed_bytes: int
    seconds: float

    def summary(self) -> str:
        """One human-readable line."""
        return (
            f"{self.job}: {self.archive} sha256:{self.archive_sha256} "
            f"manifest {self.manifest_digest} compressed {self.compressed_bytes / 1e6:.1f} MB "
            f"uncompressed {self.uncompressed_bytes / 1e6:.1f} MB in {self.seconds:.1f} s"
        )


def job_name(pex: Path) -> str:
    """bronze_to_silver for .../bronze_to_silver.pex."""
    return pex.name.removesuffix(".pex")


def labels_for(
    job: str,
    *,
    source: str | None,
    revision: str | None,
    version: str | None,
    extra: Mapping[str, str],
) -> dict[str, str]:
    """OCI annotations-as-labels: title, source, revision, version, base, plus extra ones."""
    labels = {
        "org.opencontainers.image.title": job,
        "org.opencontainers.image.description": f"etl-platform job {job}: PEX on Debian python3.11",
        "org.opencontainers.image.base.name": "local: Debian bookworm python3.11 rootfs",
    }
    for key, value in (("source", source), ("revision", revision), ("version", version)):
        if value:
            labels[f"org.opencontainers.image.{key}"] = value
    labels.update(extra)
    return labels


def build_base_layer(workdir: Path, *, python: str, compile_pyc: bool, epoch: int) -> Layer:
    """The shared base layer tar (identical for every job built from the same host packages)."""
    rootfs = base_rootfs(workdir, python=python, compile_pyc=compile_pyc)
    tar = workdir / "base.tar"
    with open(tar, "wb") as out:
        write_layer(rootfs.entries.values(), out, mtime=epoch)
    packages = ", ".join(sorted(p.split(":")[0] for p in rootfs.packages))
    gzipped = gzip_file(tar, workdir / "base.tar.gz").path  # once, however many images use it
    return Layer(
        tar=tar, created_by=f"tools/oci: Debian rootfs of {python} ({packages})", gzipped=gzipped
    )


def build_image(
    pex: Path,
    out: Path,
    base: Layer,
    workdir: Path,
    *,
    labels: Mapping[str, str],
    python: str = PYTHON,
    tag: str = "latest",
    epoch: int = DEFAULT_EPOCH,
) -> BuiltImage:
    """Write an oci-archive for one PEX on top of the base layer."""
    started = time.monotonic()
    job = job_name(pex)
    app = workdir / f"{job}.app.tar"
    with open(app, "wb") as stream:
        write_layer(tree_entries(pex, f"/app/{pex.name}", exclude=_PYCACHE), stream, mtime=epoch)
    config = ImageConfig(entrypoint=[python, "-I", f"/app/{pex.name}"], env=BASE_ENV, labels=labels)
    layout = workdir / f"{job}.layout"
    layers = [base, Layer(tar=app, created_by=f"tools/oci: COPY {pex.name} /app/{pex.name}")]
    # The ref name becomes the image name when podman loads the archive: <job>:<tag>.
    manifest = write_layout(layout, layers, config, ref_name=f"{job}:{tag}", epoch=epoch)
    out.parent.mkdir(parents=True, exist_ok=True)
    pack_archive(layout, out, epoch=epoch)
    blobs = sorted((layout / "blobs" / "sha256").iterdir())
    compressed = sum(b.stat().st_size for b in blobs)
    uncompressed = sum(layer.tar.stat().st_size for layer in layers)
    return BuiltImage(
        job=job,
        archive=out,
        archive_sha256=hash_file(out).sha256,
        manifest_digest=manifest.digest,
        compressed_bytes=compressed,
        uncompressed_bytes=uncompressed,
        seconds=time.monotonic() - started,
    )


def build_images(
    pexes: Sequence[Path],
    out_dir: Path,
    *,
    source: str | None = None,
    revision: str | None = None,
    version: str | None = None,
    extra_labels: Mapping[str, str] | None = None,
    python: str = PYTHON,
    compile_pyc: bool = True,
    tag: str = "latest",
    epoch: int = DEFAULT_EPOCH,
) -> list[BuiltImage]:
    """Build one oci-archive per PEX (<out_dir>/<job>.oci.tar), sharing one base layer."""
    with tempfile.TemporaryDirectory(prefix="oci-build-") as tmp:
        workdir = Path(tmp)
        started = time.monotonic()
        base = build_base_layer(workdir, python=python, compile_pyc=compile_pyc, epoch=epoch)
        base_seconds = time.monotonic() - started
        built = []
        for pex in pexes:
            job = job_name(pex)
            labels = labels_for(
                job, source=source, revision=revision, version=version, extra=extra_labels or {}
            )
            image = build_image(
                pex, out_dir / f"{job}.oci.tar", base, workdir,
                labels=labels, python=python, tag=tag, epoch=epoch,
            )  # fmt: skip
            built.append(image)
        if built:  # charge the shared base to the first image so its time is not hidden
            first = built[0]
            built[0] = BuiltImage(**{**first.__dict__, "seconds": first.seconds + base_seconds})
        return built


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--label {text!r}: expected KEY=VALUE")
    return key, value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="build_image",
        description="Build <job>.oci.tar images (Debian python3.11 base + PEX) without a daemon.",
    )
    parser.add_argument("pex", nargs="+", type=Path, help="PEX file or packed/loose PEX directory")
    parser.add_argument("--out-dir", type=Path, default=Path("dist/images"))
    parser.add_argument(
        "--source",
        default=os.environ.get("ETL_IMAGE_SOURCE"),
        help="org.opencontainers.image.source (default $ETL_IMAGE_SOURCE)",
    )
    parser.add_argument(
        "--revision",
        default=os.environ.get("GIT_COMMIT"),
        help="org.opencontainers.image.revision (default $GIT_COMMIT)",
    )
    parser.add_argument("--version", dest="image_version", help="org.opencontainers.image.version")
    parser.add_argument("--label", type=_label, action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--tag", default="latest", help="image tag: the archive's ref name is <job>:<tag>"
    )
    parser.add_argument("--python", default=PYTHON, help=f"interpreter to ship (default {PYTHON})")
    parser.add_argument("--no-compile", action="store_true", help="ship the stdlib without pycs")
    parser.add_argument(
        "--source-date-epoch", type=int,
        default=int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH)),
        help="file mtimes and image created time (default $SOURCE_DATE_EPOCH, else 1980)",
    )  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: prints one summary line per image; exit 2 on bad input, 1 on a failed build."""
    args = _parser().parse_args(argv)
    missing = [str(p) for p in args.pex if not p.exists()]
    if missing:
        print(f"build_image: no such PEX: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        images = build_images(
            args.pex, args.out_dir,
            source=args.source, revision=args.revision, version=args.image_version,
            extra_labels=dict(args.label), python=args.python, compile_pyc=not args.no_compile,
            tag=args.tag, epoch=args.source_date_epoch,
        )  # fmt: skip
    except (OSError, ValueError, subprocess.CalledProcessError) as exc:
        print(f"build_image: {exc}", file=sys.stderr)
        return 1
    for image in images:
        print(image.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
