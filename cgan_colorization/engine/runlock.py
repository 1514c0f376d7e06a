"""One process per run folder: an advisory lock file `FOLDER/.lock`, held for the life of the run.

The lock is the operating system's (`fcntl.flock` on the open file), so it ends with its process
however that ends, a crash or a kill included. The file says who holds it (host, pid, start time,
command), for the one sentence that refuses a second process. A file whose lock is free was left by
a process that is gone: it is taken over with a one-line warning. Where a filesystem has no `flock`,
a holder on this host is alive while its pid is, and one on another host is assumed alive.

    with runlock.hold(config.out, flag="--out"):
        ...  # the run writes config.out
"""

import contextlib
import errno
import json
import os
import shlex
import socket
import sys
import time

try:
    import fcntl
except ImportError:  # Windows: the pid check alone
    fcntl = None

LOCK_FILE = ".lock"
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL)


class RunLocked(ValueError):
    """Another live process holds the folder; the message is one sentence that names it."""


def describe(holder):
    """'pid 123 on host-a since 2026-01-31 14:02:07 (5 min ago), running train_colorizer.py --out runs/x'."""
    if not holder:
        return "a process that has just started (its lock file is still empty)"
    since = holder.get("since")
    when = ""
    if isinstance(since, (int, float)):
        minutes = max(0.0, time.time() - since) / 60
        age = f"{minutes:.0f} min ago" if minutes < 120 else f"{minutes / 60:.1f} h ago" if minutes < 2880 else \
            f"{minutes / 1440:.0f} days ago"
        when = f" since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since))} ({age})"
    command = holder.get("command", "")
    command = command if len(command) <= 200 else command[:197] + "..."
    running = f", running {command}" if command else ""
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}{when}{running}"


@contextlib.contextmanager
def hold(folder, flag="--out", log=print):
    """Holds the lock of `folder` (created if needed) for the `with` block: a `RunLocked` error when a
    live process holds it (`flag` is the option that names another folder), a warning when a dead one
    left it. On leaving, the lock file is removed, and the folder too when the block left it empty."""
    folder = os.fspath(folder)
    created = not os.path.isdir(folder)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK_FILE)
    fd = _acquire(path, folder, flag, log)
    try:
        yield path
    finally:
        _release(fd, path)
        if created:
            with contextlib.suppress(OSError):  # not empty: the run wrote something, which stays
                os.rmdir(folder)


def _acquire(path, folder, flag, log):
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            locked = _flock(fd)
            holder = _read(fd)
            if locked is False or (locked is None and _alive(holder)):
                raise RunLocked(f"{folder} is in use by another run: {describe(holder)}; wait for it to end, or "
                                f"pass another {flag}.")
            if not _same_file(fd, path):  # its holder removed it as it ended, between our open and lock
                os.close(fd)
                continue
            if holder:
                log(f"warning: taking over {folder}, whose lock was left by {describe(holder)}, which is gone.")
            _write(fd, {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(),
                        "command": shlex.join([os.path.basename(sys.argv[0] or "python"), *sys.argv[1:]])})
            return fd
        except BaseException:
            os.close(fd)
            raise


def _flock(fd):
    """True: locked; False: another process holds the lock; None: this filesystem has no flock."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno in _NO_FLOCK:
            return None
        raise


def _alive(holder):
    """Without flock: whether the holder may still run (its pid lives on this host, or it is on another host)."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _same_file(fd, path):
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _read(fd):
    os.lseek(fd, 0, os.SEEK_SET)
    data = os.read(fd, 1 << 16)
    try:
        holder = json.loads(data.decode("utf-8")) if data.strip() else {}
    except (UnicodeDecodeError, ValueError):
        holder = {}
    return holder if isinstance(holder, dict) else {}


def _write(fd, holder):
    data = (json.dumps(holder) + "\n").encode("utf-8")
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)


def _release(fd, path):
    try:
        if _same_file(fd, path):  # removed while still held: a process that opened it sees it gone and retries
            os.remove(path)
    finally:
        os.close(fd)
