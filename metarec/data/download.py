"""Fetch a dataset with a public URL into a data root (``metarec download NAME``).

Only GroupLens (ml-100k, ml-1m), MIND (small/large/demo) and the Amazon 2018 5-core files have official URLs; the
processed Amazon sets come from research repositories and are placed by hand (see docs/datasets.md). Each file is
streamed with a short timeout to a temporary name, checked against the card's checksum when one is known, then
renamed into place; zips are unpacked (GroupLens zips into the dataset folder, MIND zips into ``MIND<size>_<part>/``).
Without network it fails fast with one DataError naming the URL, the reason and where to put the files by hand.
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from metarec.data.registry import DatasetCard, default_root, get_card, locate
from metarec.errors import DataError
from metarec.utils import file_digest

TIMEOUT_S = 10.0
CHUNK = 1 << 20


def _manual_hint(card: DatasetCard, dest: Path) -> str:
    layouts = " or ".join("{" + ", ".join(layout) + "}" for layout in card.layouts)
    return f"place {layouts} in {dest} by hand"


def _check(path: Path, expected: str | None, url: str) -> None:
    if not expected:
        return
    algo, _, want = expected.partition(":")
    got = file_digest(path, algo)
    if got != want:
        raise DataError(f"checksum mismatch for {url}: {algo} {got} != expected {want}; the download "
                        "is corrupt or the file changed upstream (nothing was installed)", path)


def fetch(url: str, dest_dir: Path, checksum: str | None = None, timeout: float = TIMEOUT_S) -> Path:
    """Download ``url`` into ``dest_dir`` atomically (temp file + rename) and verify ``checksum``."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    fname = url.rstrip("/").rsplit("/", 1)[-1]
    final = dest_dir / fname
    fd, tmp = tempfile.mkstemp(prefix=f".{fname}.", suffix=".part", dir=dest_dir)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while True:
                chunk = resp.read(CHUNK)
                if not chunk:
                    break
                out.write(chunk)
        _check(Path(tmp), checksum, url)
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return final


def _safe_extract(zf: zipfile.ZipFile, into: Path) -> None:
    base = into.resolve()
    for member in zf.namelist():
        target = (into / member).resolve()
        if base != target and base not in target.parents:
            raise DataError(f"zip member {member!r} would extract outside {into}", zf.filename)
    zf.extractall(into)


def unzip(archive: Path, target: Path) -> None:
    """Extract ``archive`` into ``target``; a single top-level folder in the zip is flattened away."""
    tmp = Path(tempfile.mkdtemp(prefix=".unzip.", dir=archive.parent))
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                _safe_extract(zf, tmp)
        except zipfile.BadZipFile as e:
            raise DataError(f"not a valid zip archive ({e})", archive) from None
        entries = [p for p in tmp.iterdir() if not p.name.startswith("__MACOSX")]
        src = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp
        target.mkdir(parents=True, exist_ok=True)
        for p in src.iterdir():
            if p.name.startswith("__MACOSX"):
                continue
            dst = target / p.name
            if dst.is_dir():
                shutil.rmtree(dst)
            elif dst.exists():
                dst.unlink()
            os.replace(p, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download(name: str, root: str | Path | None = None, *, timeout: float = TIMEOUT_S,
             keep_archives: bool = False) -> Path:
    """Download dataset ``name`` into ``<root>/<card.folder>`` (root defaults to $METAREC_DATA or
    ``<repo>/datasets``) and return that folder. DataError (URL, reason, manual placement) on any failure."""
    card = get_card(name)
    dest = Path(root).expanduser() if root is not None else default_root()
    folder = dest / card.folder
    urls = card.download_urls
    if not urls:
        raise DataError(f"dataset {name!r} has no public download URL; obtain the files from {card.source} and "
                        f"{_manual_hint(card, folder)}")
    for url in urls:
        fname = url.rstrip("/").rsplit("/", 1)[-1]
        try:
            path = fetch(url, folder, card.checksums.get(fname), timeout)
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            raise DataError(f"could not download {url}: {reason}. To install {name!r} without network, download it "
                            f"elsewhere and {_manual_hint(card, folder)}") from None
        if fname.endswith(".zip"):
            target = folder / fname[:-4] if card.family == "mind" else folder
            unzip(path, target)
            if not keep_archives:
                path.unlink(missing_ok=True)
    if locate(name, dest) is None:
        raise DataError(f"downloaded {', '.join(urls)} but the expected files are not there; "
                        f"{_manual_hint(card, folder)}", folder)
    return folder
