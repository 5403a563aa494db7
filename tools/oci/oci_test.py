"""Tests of the daemonless OCI builder: deterministic tars, a consistent layout, a slim rootfs."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from oci.build_image import main
from oci.layout import ImageConfig, Layer, pack_archive, write_layout
from oci.rootfs import MOZILLA_CA_DIR, base_rootfs
from oci.tarball import (
    Entry,
    data_entry,
    gzip_file,
    symlink_entry,
    tree_entries,
    write_layer,
)


def layer_bytes(entries: list[Entry], mtime: int = 315532800) -> bytes:
    out = io.BytesIO()
    write_layer(entries, out, mtime=mtime)
    return out.getvalue()


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_layer_bytes_do_not_depend_on_entry_order_and_parents_come_first() -> None:
    entries = [
        data_entry("/usr/lib/b.txt", b"b"),
        symlink_entry("/usr/bin/py", "python3.11"),
        data_entry("/app/x", b"x", mode=0o755),
    ]

    forward, backward = layer_bytes(entries), layer_bytes(entries[::-1])
    names = [m.name for m in members(forward)]

    assert forward == backward
    assert names == ["app", "app/x", "usr", "usr/bin", "usr/bin/py", "usr/lib", "usr/lib/b.txt"]
    assert {(m.uid, m.gid, m.mtime, m.uname) for m in members(forward)} == {
        (0, 0, 315532800, "root")
    }


def test_same_path_with_different_content_is_refused() -> None:
    with pytest.raises(ValueError, match="/etc/x: added twice"):
        layer_bytes([data_entry("/etc/x", b"1"), data_entry("/etc/x", b"2")])


def test_tree_entries_keep_exec_bits_and_skip_excluded_names(tmp_path: Path) -> None:
    pex = tmp_path / "job.pex"
    (pex / "__pycache__").mkdir(parents=True)
    (pex / "__pycache__" / "m.pyc").write_bytes(b"")
    (pex / "__main__.py").write_text("print()")
    (pex / "__main__.py").chmod(0o700)
    (pex / "PEX-INFO").write_text("{}")

    entries = tree_entries(pex, "/app/job.pex", exclude=frozenset({"__pycache__"}))

    assert {e.path: e.mode for e in entries} == {
        "/app/job.pex": 0o755,
        "/app/job.pex/PEX-INFO": 0o644,
        "/app/job.pex/__main__.py": 0o755,
    }


def test_gzip_is_reproducible_with_no_name_and_zero_mtime(tmp_path: Path) -> None:
    raw = tmp_path / "layer.tar"
    raw.write_bytes(b"abc" * 1000)

    one, two = gzip_file(raw, tmp_path / "1.gz"), gzip_file(raw, tmp_path / "2.gz")
    header = one.path.read_bytes()[:10]

    assert one.sha256 == two.sha256
    assert header[4:8] == b"\0\0\0\0"  # MTIME
    assert header[3] & 0x08 == 0  # no FNAME
    assert gzip.decompress(one.path.read_bytes()) == raw.read_bytes()


def test_layout_is_consistent_and_its_archive_reproducible(tmp_path: Path) -> None:
    tar = tmp_path / "layer.tar"
    tar.write_bytes(layer_bytes([data_entry("/app/hello", b"hi")]))
    config = ImageConfig(entrypoint=["/app/hello"], env={"A": "1"}, labels={"l": "v"})
    archives = []
    for run in ("a", "b"):
        layout = tmp_path / run
        manifest = write_layout(layout, [Layer(tar, "test")], config, ref_name="x:1", epoch=0)
        pack_archive(layout, tmp_path / f"{run}.tar", epoch=0)
        archives.append((tmp_path / f"{run}.tar").read_bytes())

        index = json.loads((layout / "index.json").read_text())
        blobs = layout / "blobs" / "sha256"
        assert index["manifests"][0]["digest"] == manifest.digest
        assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "x:1"
        doc = json.loads((blobs / manifest.sha256).read_text())
        image = json.loads((blobs / doc["config"]["digest"].split(":")[1]).read_text())
        assert image["rootfs"]["diff_ids"] == [f"sha256:{sha256(tar.read_bytes())}"]
        assert image["config"]["User"] == "65534:65534"
        for blob in blobs.iterdir():
            assert sha256(blob.read_bytes()) == blob.name

    assert archives[0] == archives[1]


def test_base_rootfs_is_the_interpreter_its_libraries_and_no_host_secrets(tmp_path: Path) -> None:
    rootfs = base_rootfs(tmp_path, compile_pyc=False)
    paths = set(rootfs.entries)
    bundle = rootfs.entries["/etc/ssl/certs/ca-certificates.crt"].data or b""

    assert "/usr/bin/python3.11" in paths
    assert "/usr/lib/python3.11/json/__init__.py" in paths
    assert "/usr/share/zoneinfo/America/Los_Angeles" in paths
    assert any(p.startswith("/usr/lib/x86_64-linux-gnu/libssl.so") for p in paths)
    assert any(p.startswith("/usr/lib/x86_64-linux-gnu/libc.so") for p in paths)
    assert not [p for p in paths if "/python3.11/test/" in p or "/config-3.11" in p]
    assert not [p for p in paths if p.startswith(("/usr/share/man", "/usr/local"))]
    assert bundle.count(b"BEGIN CERTIFICATE") == len(list(MOZILLA_CA_DIR.glob("*.crt")))
    assert b"nobody:x:65534:65534" in (rootfs.entries["/etc/passwd"].data or b"")
    assert rootfs.entries["/tmp"].mode == 0o1777
    assert {"libpython3.11-stdlib", "libc6"} <= {p.split(":")[0] for p in rootfs.packages}


def test_cli_refuses_a_missing_pex(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope.pex"), "--out-dir", str(tmp_path)]) == 2
    assert "no such PEX" in capsys.readouterr().err
