"""The local base image: Debian bookworm's python3.11, made with debootstrap, for hosts that
cannot pull `python:3.11.11-slim-bookworm` (no registry here, none in CI).

The root filesystem is made once per recipe and kept as a tarball in the user's cache
(~/.cache/etl-platform/base-images/<key>.tar, keyed by the recipe below), so every later build
only imports it: about 65-90 s the first time, a second or two after.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from job_images.storage import Storage

SUITE = "bookworm"
MIRROR = os.environ.get("ETL_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# The interpreter and its standard library (ssl, sqlite3, ctypes, zoneinfo...), the time zone
# database (agencies are in many time zones), Mozilla's CAs (S3 over TLS) and libstdc++ (pyarrow
# and deltalake load it). minbase adds libc, bash, coreutils, dpkg and a passwd with nobody.
PACKAGES = ("python3.11-minimal", "libpython3.11-stdlib", "tzdata", "ca-certificates", "libstdc++6")
# What a batch job never uses, purged with dpkg so the package database still tells scanners the
# truth: logins, PAM, mount and disk tools, bash (/bin/sh is dash), the libraries of Python
# modules no job imports (dbm, nis, readline, curses), then the package manager (nothing installs
# packages into a job image), its keys and TLS stack; debconf, perl and diff last (removal
# scripts and dpkg itself use them).
# fmt: off
PURGED = (
    (
        "login", "passwd", "adduser", "libpam-modules", "libpam-modules-bin", "libpam-runtime",
        "libpam0g", "libsemanage2", "libsemanage-common", "libsepol2", "libaudit1",
        "libaudit-common", "libcap-ng0", "util-linux", "util-linux-extra", "bsdutils", "mount",
        "libfdisk1", "libsmartcols1", "e2fsprogs", "libext2fs2", "libss2", "logsave",
        "libsystemd0", "libudev1", "libseccomp2", "ncurses-bin", "libdb5.3", "libnsl2",
        "libtirpc3", "libtirpc-common", "libgssapi-krb5-2", "libkrb5-3", "libk5crypto3",
        "libkrb5support0", "libkeyutils1", "libcom-err2", "libreadline8", "readline-common",
        "libncursesw6", "bash",
    ),
    (
        "apt", "libapt-pkg6.0", "gpgv", "debian-archive-keyring", "libgnutls30", "libp11-kit0",
        "libgcrypt20", "libgpg-error0", "libunistring2", "libidn2-0", "libnettle8",
        "libhogweed6", "libtasn1-6", "libxxhash0",
    ),
    ("debconf", "perl-base", "diffutils"),
)
# fmt: on
# Documentation, translations, iconv modules (Python has its own codecs) and apt's leftovers.
# usr/share/doc keeps each package's copyright file (its licence), as Debian's slim images do.
DOCS = "usr/share/doc"
# fmt: off
EMPTIED = (
    "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian",
    "usr/lib/x86_64-linux-gnu/gconv", "var/cache/debconf", "var/lib/apt", "var/cache/apt",
    "var/log", "dev", "proc", "sys", "tmp",
)
# fmt: on
# Python's help() topics, its test package and test extension modules; the symbol files dpkg
# keeps for building other packages against these; gdb's helpers for libstdc++ (globs).
_STDLIB = "usr/lib/python3.11"
# fmt: off
REMOVED = (
    f"{_STDLIB}/pydoc_data", f"{_STDLIB}/test", f"{_STDLIB}/lib-dynload/_test*",
    f"{_STDLIB}/lib-dynload/_ctypes_test*", f"{_STDLIB}/lib-dynload/xx*",
    f"{_STDLIB}/lib-dynload/_xx*", "var/lib/dpkg/info/*.symbols", "var/lib/dpkg/info/*.shlibs",
    "usr/share/gcc", "usr/share/gdb",
)
# fmt: on
# In the image config: a base from scratch has no PATH, and the Dockerfile finds python3.11 on it.
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
REPOSITORY = "localhost/etl-platform/debian-python3.11"


def recipe_key() -> str:
    """Names the cached rootfs: a new recipe makes a new one."""
    recipe = {"suite": SUITE, "packages": PACKAGES, "purged": PURGED}
    recipe |= {"docs": DOCS, "emptied": EMPTIED, "removed": REMOVED}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
    return f"{SUITE}-{digest[:12]}"


def cache_dir() -> Path:
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(home) / "etl-platform" / "base-images"


def base_rootfs(cache: Path | None = None) -> Path:
    """The cached rootfs tarball, made first if missing (needs root and the Debian mirror).
    Concurrent callers wait for one another instead of debootstrapping twice."""
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"{recipe_key()}.tar"
    with (cache / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not tarball.exists():
            _make_rootfs_tarball(tarball)
            prune(cache, keep=tarball)
    return tarball


def prune(cache: Path, *, keep: Path) -> list[Path]:
    """Remove the rootfs tarballs of older recipes (and partial ones a killed build left) from
    cache: each is ~60 MB and no build uses it again. The removed paths."""
    removed = []
    for path in sorted([*cache.glob("*.tar"), *cache.glob("*.partial")]):
        if path != keep:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _make_rootfs_tarball(tarball: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=tarball.parent) as work:
        rootfs = Path(work) / "rootfs"
        _run(
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(rootfs),
            MIRROR,
        )
        for packages in PURGED:
            _run(
                "chroot",
                str(rootfs),
                "dpkg",
                "--purge",
                "--force-remove-essential",
                "--force-depends",
                *packages,
            )
        for relative in EMPTIED:
            for child in (rootfs / relative).glob("*"):
                _remove(child)
        for pattern in REMOVED:
            for path in rootfs.glob(pattern):
                _remove(path)
        _keep_only_copyrights(rootfs / DOCS)
        (rootfs / "tmp").chmod(0o1777)
        partial = tarball.with_suffix(".partial")
        _run(
            "tar",
            "--create",
            "--file",
            str(partial),
            "--directory",
            str(rootfs),
            "--numeric-owner",
            "--sort=name",
            ".",
        )
        partial.rename(tarball)


def import_base(storage: Storage, tarball: Path, *, timestamp: int) -> str:
    """Commit the rootfs as a local image in storage; returns its name (for BASE_IMAGE)."""
    name = f"{REPOSITORY}:{tarball.stem}"
    container = storage.run_buildah("from", "--quiet", "scratch").strip()
    try:
        storage.run_buildah("add", "--quiet", container, str(tarball), "/")
        storage.run_buildah("config", "--env", f"PATH={PATH}", "--env", "LANG=C.UTF-8", container)
        storage.run_buildah(
            "commit",
            "--quiet",
            "--timestamp",
            str(timestamp),
            "--identity-label=false",
            container,
            name,
        )
    finally:
        storage.run_buildah("rm", container)
    return name


def _run(*command: str) -> None:
    # debootstrap and chroot live in the sbin directories, which a sandbox's PATH may lack.
    path = os.pathsep.join(filter(None, (os.environ.get("PATH"), PATH)))
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        env={**os.environ, "PATH": path},
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command[:3])}... failed (exit {result.returncode}):\n"
            f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _keep_only_copyrights(docs: Path) -> None:
    for path in sorted(docs.rglob("*"), reverse=True):  # children before their directory
        if path.is_symlink() or path.is_file():
            if path.name != "copyright":
                path.unlink()
        elif not any(path.iterdir()):
            path.rmdir()
