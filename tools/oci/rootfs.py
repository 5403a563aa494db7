"""A slim base rootfs from the host's Debian python3.11: interpreter, stdlib, shared libraries."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from oci.tarball import Entry, data_entry, dir_entry, file_entry, symlink_entry

PYTHON = "/usr/bin/python3.11"
STDLIB = "/usr/lib/python3.11"
# Debian packages whose files make the interpreter and its standard library (python3.11-venv
# (ensurepip) and -dev (headers, libpython3.11.a) are deliberately not among them).
PYTHON_PACKAGES = ("python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib")
# zoneinfo needs the system tz database (the workload has agencies in many time zones).
DATA_PACKAGES = ("tzdata",)
# The system libraries a manylinux wheel may link against (PEP 600's policy), which ldd of the
# interpreter does not list: pyarrow and deltalake load libdl, librt, libstdc++ and libgcc_s.
MANYLINUX_LIBRARIES = (
    "libdl.so.2", "libgcc_s.so.1", "libm.so.6", "libpthread.so.0", "libresolv.so.2",
    "librt.so.1", "libstdc++.so.6", "libutil.so.1",
)  # fmt: skip
LIBRARY_DIR = "/usr/lib/x86_64-linux-gnu"
# Never wanted in a batch-job image: tests, GUI/terminal UI, 2to3, and their extension modules.
_DROP_DIRS = frozenset(
    {"test", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "curses"}
)
_DROP_FILES = re.compile(
    r"(^|/)(turtle\.py"
    r"|_(test\w*|ctypes_test|xxtestfuzz|xxsubinterpreters|curses\w*|dbm|gdbm|tkinter)"
    r"\.cpython-311-x86_64-linux-gnu\.so|(xxlimited\w*|readline|nis|ossaudiodev)"
    r"\.cpython-311-x86_64-linux-gnu\.so)$"
)
_DOC_JUNK = ("/usr/share/doc/", "/usr/share/man/", "/usr/share/lintian/", "/usr/share/binfmts/")
_LDD_LINE = re.compile(r"^\s*(?:\S+ => )?(/\S+) \(0x[0-9a-f]+\)$")
MOZILLA_CA_DIR = Path("/usr/share/ca-certificates/mozilla")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

ACCOUNTS = (  # /etc/passwd; "x": no password here
    "root:x:0:0:root:/root:/usr/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
)
GROUPS = "root:x:0:\nnogroup:x:65534:\n"
NSSWITCH = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n"


@dataclass
class Rootfs:
    """Entries of the base layer plus the Debian packages they came from (for labels/scanners)."""

    entries: dict[str, Entry] = field(default_factory=dict)
    packages: set[str] = field(default_factory=set)

    def add(self, entry: Entry) -> None:
        """Add an entry, keeping the first one for a path."""
        self.entries.setdefault(entry.path, entry)

    def add_host_path(self, path: str) -> str:
        """Copy a host path, recreating every symlink met on the way; returns the real path."""
        pure = PurePosixPath(os.path.normpath(path))
        if str(pure) == "/":
            return "/"
        parent = self.add_host_path(str(pure.parent))
        here = str(PurePosixPath(parent) / pure.name)
        if os.path.islink(here):
            target = os.readlink(here)
            self.add(symlink_entry(here, target))
            resolved = target if target.startswith("/") else str(PurePosixPath(parent) / target)
            return self.add_host_path(resolved)
        if os.path.isdir(here):
            self.add(dir_entry(here))
        else:
            self.add(file_entry(here, Path(here)))
        return here


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def package_files(packages: Iterable[str]) -> list[str]:
    """Regular files and symlinks that dpkg lists for the packages, minus docs and dropped parts."""
    keep = []
    for line in _run("dpkg", "-L", *packages).splitlines():
        path = line.strip()
        if not path.startswith("/") or path.startswith(_DOC_JUNK) or path == "/.":
            continue
        if set(PurePosixPath(path).parts) & _DROP_DIRS or _DROP_FILES.search(path):
            continue
        if "/config-3.11-" in path or path.endswith((".pyc", "/binfmt.d/python3.11.conf")):
            continue
        if os.path.islink(path) or os.path.isfile(path):
            keep.append(path)
    return sorted(set(keep))


def shared_libraries(binaries: Iterable[str]) -> list[str]:
    """Every shared library (and the dynamic loader) that ldd lists for the binaries."""
    found: set[str] = set()
    for binary in binaries:
        for line in _run("ldd", binary).splitlines():
            match = _LDD_LINE.match(line)
            if match:
                found.add(match.group(1))
    return sorted(found)


def owning_packages(paths: Iterable[str]) -> set[str]:
    """Debian packages that own the paths (usrmerge: dpkg may know a file only by its /lib path)."""
    owners: set[str] = set()
    for path in paths:
        candidates = [path, os.path.realpath(path)]
        candidates += [c.replace("/usr/lib/", "/lib/", 1) for c in candidates]
        for candidate in candidates:
            result = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
            if result.returncode == 0:
                owners.update(line.split(":")[0] for line in result.stdout.splitlines())
                break
    return owners


def ca_bundle() -> bytes:
    """Mozilla's CAs from the ca-certificates package only: the build host's local CAs stay out."""
    certs = sorted(MOZILLA_CA_DIR.glob("*.crt"))
    if not certs:
        raise FileNotFoundError(
            f"{MOZILLA_CA_DIR}: no certificates (apt-get install ca-certificates)"
        )
    return b"".join(c.read_bytes().rstrip(b"\n") + b"\n" for c in certs)


_COMPILE = """
import json, py_compile, sys
for src, cfile, dfile in json.load(sys.stdin):
    py_compile.compile(src, cfile=cfile, dfile=dfile, doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
"""


def compile_stdlib(sources: list[str], staging: Path, python: str = PYTHON) -> list[Entry]:
    """Bytecode for the stdlib, compiled by the image's own interpreter as unchecked-hash pycs.

    A read-only root filesystem cannot cache bytecode, and timestamp-based pycs would be stale
    against the layer's fixed mtimes; unchecked-hash pycs are valid as shipped and reproducible.
    """
    jobs, caches = [], []
    for src in sources:
        pure = PurePosixPath(src)
        cache = str(pure.parent / "__pycache__" / f"{pure.stem}.cpython-311.pyc")
        jobs.append((src, str(staging / cache.lstrip("/")), src))
        caches.append(cache)
    subprocess.run([python, "-I", "-c", _COMPILE], input=json.dumps(jobs), text=True, check=True)
    return [file_entry(cache, Path(job[1])) for cache, job in zip(caches, jobs, strict=True)]


def dpkg_status(packages: Iterable[str]) -> list[Entry]:
    """distroless-style /var/lib/dpkg/status.d/<pkg> records, so image scanners see versions."""
    entries = []
    for package in sorted(packages):
        stanza = _run("dpkg-query", "-s", package)
        name = package.split(":")[0]
        entries.append(data_entry(f"/var/lib/dpkg/status.d/{name}", stanza.encode()))
        copyright_file = f"/usr/share/doc/{name}/copyright"
        if os.path.isfile(copyright_file):
            entries.append(file_entry(copyright_file, Path(os.path.realpath(copyright_file))))
    return entries


def base_rootfs(staging: Path, *, python: str = PYTHON, compile_pyc: bool = True) -> Rootfs:
    """The slim base: python3.11, its stdlib (+pycs), shared libraries, CA bundle, users, /tmp."""
    if sys.platform != "linux" or not os.path.exists(python):
        raise FileNotFoundError(f"{python}: needs Debian's python3.11 (apt-get install python3.11)")
    rootfs = Rootfs()
    for top in ("bin", "lib", "lib64", "sbin"):  # usrmerge layout, as on Debian bookworm
        rootfs.add(symlink_entry(f"/{top}", f"usr/{top}"))
    files = package_files(PYTHON_PACKAGES)
    for path in [*files, *package_files(DATA_PACKAGES)]:
        rootfs.add_host_path(path)
    rootfs.add(symlink_entry("/usr/bin/python3", "python3.11"))
    extensions = [p for p in files if p.endswith(".so")]
    wheel_libraries = [
        f"{LIBRARY_DIR}/{name}"
        for name in MANYLINUX_LIBRARIES
        if os.path.exists(f"{LIBRARY_DIR}/{name}")
    ]
    libraries = sorted({*shared_libraries([python, *extensions, *wheel_libraries]),
                        *wheel_libraries})  # fmt: skip
    for lib in libraries:
        rootfs.add_host_path(lib)
    rootfs.packages = {*PYTHON_PACKAGES, *DATA_PACKAGES} | owning_packages(libraries)
    rootfs.add_host_path("/etc/os-release")
    for entry in dpkg_status(rootfs.packages):
        rootfs.add(entry)
    if compile_pyc:
        sources = [p for p in files if p.endswith(".py") and p.startswith(f"{STDLIB}/")]
        sources = [p for p in sources if not os.path.islink(p)]
        for entry in compile_stdlib(sources, staging / "pyc", python):
            rootfs.add(entry)
    rootfs.add(data_entry(CA_BUNDLE, ca_bundle()))
    rootfs.add(symlink_entry("/usr/lib/ssl/cert.pem", CA_BUNDLE))
    rootfs.add(symlink_entry("/usr/lib/ssl/certs", "/etc/ssl/certs"))
    rootfs.add(data_entry("/etc/passwd", ACCOUNTS.encode()))
    rootfs.add(data_entry("/etc/group", GROUPS.encode()))
    rootfs.add(data_entry("/etc/nsswitch.conf", NSSWITCH.encode()))
    rootfs.add(dir_entry("/tmp", 0o1777))  # noqa: S108 (a path inside the image)
    rootfs.add(dir_entry("/app"))
    return rootfs
