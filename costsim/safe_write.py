"""Write a file the CLI produces without clobbering what is at the path.

A new path or a regular file is replaced atomically: the text goes to a unique temp file in the same
directory (tempfile.mkstemp, so concurrent writers never share one), which then replaces the target. Anything
else at the path (a character device such as /dev/null, a FIFO, a terminal) is written directly, never
replaced; `-` means standard output; a symbolic link stays, and the file it points to is replaced. A directory, or an
empty path, is an error.
"""
from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

from .errors import CostsimError

STDOUT = "-"


def check_target(path: str | os.PathLike, what: str = "--output") -> None:
    """Raise CostsimError now if `path` cannot be written (empty, a directory, missing folder)."""
    text = os.fspath(path)
    if text == STDOUT:
        return
    if not text.strip():
        raise CostsimError(f"{what}: empty path; give a file name (or - for standard output)")
    p = Path(text)
    try:
        st = p.stat()
    except FileNotFoundError:
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.is_dir():
            raise CostsimError(f"{what} {text}: folder {parent} does not exist") from None
        return
    except OSError as exc:
        raise CostsimError(f"{what} {text}: cannot write ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise CostsimError(f"{what} {text}: is a directory; give a file name")


def write_text(path: str | os.PathLike, text: str, what: str = "--output", encoding: str = "utf-8") -> str:
    """Write `text` to `path` (see the module doc); returns the path as given. OSError → CostsimError."""
    check_target(path, what)
    target = os.fspath(path)
    if os.path.islink(target):                 # keep the link: replace the file it points to
        target = os.path.realpath(target)
    if target == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return target
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    try:
        if st is not None and not stat.S_ISREG(st.st_mode):
            with open(target, "w", encoding=encoding) as fh:   # a device or FIFO: write into it, never replace
                fh.write(text)
            return target
        _replace_atomically(target, text, encoding)
    except OSError as exc:
        raise CostsimError(f"{what} {target}: cannot write ({exc.strerror or exc})") from None
    return target


def _replace_atomically(target: str, text: str, encoding: str) -> None:
    folder = os.path.dirname(target) or "."
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(target)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding=encoding) as fh:
            fh.write(text)
        try:
            os.chmod(tmp, 0o644 & ~_umask())
        except OSError:
            pass
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
