"""The folder a leaderboard site is written into: only files the site writes are ever touched.

``--html DIR`` takes a new or empty folder, or one an earlier render wrote: such a folder holds
the marker :data:`MARKER`, which lists every file that render wrote, one name per line. A new
render removes exactly those files (never a file someone else put there) and lists its own as
it writes them, so a render cut short leaves a marker that still names all it wrote. Every file
name is claimed once per render (:meth:`SiteFolder.claim`), so two pages never share a name,
whatever names the records hold.
"""

from __future__ import annotations

import re
from pathlib import Path

from mtlbench.leaderboards.untrusted import MAX_SPEC_BYTES, UntrustedFileError, read_text

MARKER = ".mtlbench-site"
HEADER = "# files written by `mtlbench leaderboard --html`; removed and rewritten by the next render"
SITE_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}\.(html|png)")


class SiteFolderError(RuntimeError):
    """The site cannot be written into the folder given; the message says why and what to do."""


def _listed(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(repr(name[:60]) for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


class SiteFolder:
    """``out`` claimed for a site: the previous render's files removed, a fresh marker begun."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        entries = sorted(path.name for path in self.out.iterdir())
        marker = self.out / MARKER
        if entries and MARKER not in entries:
            raise SiteFolderError(
                f"--html {self.out}: the folder holds files mtlbench did not write ({_listed(entries)}); "
                "give a new or empty folder, or one an earlier --html wrote"
            )
        if entries:
            try:
                listed = read_text(marker, self.out, MAX_SPEC_BYTES, what="site marker").splitlines()
            except UntrustedFileError as error:
                raise SiteFolderError(f"--html {self.out}: {error}; remove it or give another folder") from None
            for name in listed:
                target = self.out / name
                if SITE_FILE.fullmatch(name) and (target.is_file() or target.is_symlink()):
                    target.unlink()
        marker.unlink(missing_ok=True)
        marker.write_text(HEADER + "\n")
        self.claimed: set[str] = set()

    def claim(self, stem: str, suffix: str) -> str:
        """A file name ``stem + suffix`` (``stem-2 + suffix`` and so on when taken in this
        render), listed in the marker before it is written; refused when a file of that name,
        not written by mtlbench, is in the folder."""
        name, count = f"{stem}{suffix}", 1
        while name in self.claimed:
            count += 1
            name = f"{stem}-{count}{suffix}"
        if not SITE_FILE.fullmatch(name):
            raise SiteFolderError(f"--html {self.out}: {name[:60]!r} is not a site file name")  # slug() never makes one
        target = self.out / name
        if target.exists() or target.is_symlink():
            raise SiteFolderError(
                f"--html {self.out}: {name} is in the folder and mtlbench did not write it; move it away or give another folder"
            )
        self.claimed.add(name)
        with open(self.out / MARKER, "a", encoding="utf-8") as stream:
            stream.write(name + "\n")
        return name

    def path(self, name: str) -> Path:
        """Where a claimed file is written."""
        if name not in self.claimed:
            raise ValueError(f"{name} was not claimed")
        return self.out / name
