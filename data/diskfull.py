"""Writes that find the disk full end a run with one sentence, never with a traceback or half a file.

`write_atomically` writes a file whole under a temporary name, then renames it; when there is no
space left it removes the partial file and raises `DiskFullError`, whose message says what could not
be written and how much space it needs. The code that runs the write adds what is kept (a run's last
backup, a cache's complete shards) with `DiskFullError.keeping`, and the script stops with that one
sentence (exit status 2).
"""

import errno
import json
import os

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# How h5py and TensorFlow word a failed write of the C libraries below them (their errors carry no errno).
NO_SPACE_TEXT = ("No space left on device", "errno = 28", "Disk quota exceeded")


class DiskFullError(ValueError):
    """A write that found no space left, as one sentence. A ValueError, so that every script's handler
    of one-sentence errors (`error: ...`, exit status 2) reports it."""

    def __init__(self, path, needs=None, what="the file", kept=None):
        self.path, self.needs, self.what, self.kept = path, needs, what, kept
        needs_text = f" (it needs about {size_text(needs)})" if needs else ""
        subject = " ".join(part for part in (what, path) if part)
        super().__init__(f"{subject} could not be written: no space is left on its disk{needs_text}; "
                         f"{kept or 'free some space and run the same command again'}.")

    def keeping(self, kept):
        """The same error, ending with what stays readable and how to go on (`kept`, a clause)."""
        return DiskFullError(self.path, self.needs, self.what, kept)


def size_text(size):
    """A byte count as a short text: 940 bytes, 12.3 MB, 1.4 GB."""
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{int(size)} bytes"


def is_disk_full(error):
    """Whether `error`, or an error it was raised from or during, is a write that found no space left."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, DiskFullError) or (isinstance(error, OSError) and error.errno in NO_SPACE):
            return True
        if any(text in str(error) for text in NO_SPACE_TEXT):
            return True
        error = error.__cause__ or error.__context__
    return False


def as_disk_full(error, kept, folder=None):
    """The `DiskFullError` for a write that found no space left (`error`, of any type), ending with
    `kept`; the file is the one the error names, else "a file in `folder`"."""
    if isinstance(error, DiskFullError):
        return error.keeping(kept)
    path = getattr(error, "filename", None)  # an OSError names its file; h5py's and TensorFlow's errors do not
    if path:
        return DiskFullError(path, what="the file", kept=kept)
    return DiskFullError(folder or "", what="a file in" if folder else "a file", kept=kept)


def partial_name(path):
    """Where `path` is written before it is whole: `generator.weights.h5` -> `generator.partial.weights.h5`
    (the suffix kept, so Keras still recognises the file)."""
    folder, name = os.path.split(path)
    stem, dot, suffix = name.partition(".")
    return os.path.join(folder, f"{stem}.partial{dot}{suffix}")


def remove_quietly(path):
    """Removes `path` if it is there (a partial file after a failed write)."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def write_atomically(path, data, what="the file"):
    """Writes `data` (bytes) to `path`: whole under `partial_name(path)`, synced, then renamed, so a
    reader sees the old file or the whole new one. A full disk removes the partial file and raises
    `DiskFullError`; any other error also leaves no partial file behind."""
    partial = partial_name(path)
    try:
        with open(partial, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as error:
        remove_quietly(partial)
        if is_disk_full(error):
            raise DiskFullError(path, len(data), what) from None
        raise
    os.replace(partial, path)


def write_text(path, text, what="the file"):
    """`write_atomically` for text (UTF-8), e.g. a JSON report."""
    write_atomically(path, text.encode("utf-8"), what)


def write_json(path, payload, what="the record"):
    """`write_text` of `payload` as indented JSON (numpy scalars as floats)."""
    write_text(path, json.dumps(payload, indent=2, default=float), what)
