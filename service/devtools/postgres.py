"""Embedded PostgreSQL: a cluster under a local directory, from the `pgserver` wheel's binaries.

Used when the configured server does not answer, so `make run` and `make test` work on a machine
without PostgreSQL installed. The wheel is found without being imported, so that production
installs never need it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from service.devtools.supervision import (
    DEV_EXTRA_HINT,
    Account,
    EmbeddedServer,
    Process,
    connects,
    run_as,
    spawn,
    start_on_free_port,
)

logger = logging.getLogger(__name__)

PG_ROLE = "postgres"
# OS account for PostgreSQL when we are root (postgres refuses to run as root). Same name the
# pgserver package uses, so a machine where pgserver already created it is reused as is.
PG_SYSTEM_USER = "pgserver"
# sockaddr_un.sun_path is 108 bytes including the terminating NUL on Linux (104 on macOS, but
# PostgreSQL reports the problem clearly there, and the data dir is rarely that long).
MAX_UNIX_SOCKET_PATH = 107
PID_FILE_STATUS_LINE = 7  # 0-based; see "LOCK_FILE_LINE_PM_STATUS" in PostgreSQL's pidfile.h
PROC_SELF_CWD = Path("/proc/self/cwd")


def start_postgres(root: Path) -> EmbeddedServer:
    """Start PostgreSQL with its data dir in `root/postgres`, creating the cluster on first use."""
    started = time.monotonic()
    bin_dir = _postgres_bin_dir()
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    account = _postgres_account()
    if account is not None:
        _grant_access(bin_dir.parent)
    data = root / "postgres"
    _ensure_cluster(bin_dir, data, account)
    _remove_stale_pid_file(data)
    data_arg = _data_dir_argument(data, account)
    socket_dir, cleanup = _socket_dir(data_arg, account)
    log_path = root / "postgres.log"

    def launch(port: int) -> Process:
        argv = _postgres_argv(bin_dir, data_arg, port, socket_dir)
        return spawn(argv, log_path, signal.SIGINT, account, cwd=data)

    def ready(process: Process, port: int) -> bool:
        return _postmaster_ready(data, process) and connects("127.0.0.1", port, 0.5)

    try:
        process, port = start_on_free_port("PostgreSQL", log_path, launch, ready)
    except BaseException:
        if cleanup is not None:
            cleanup()
        raise
    url = f"postgresql://{PG_ROLE}@127.0.0.1:{port}/postgres"
    logger.info("embedded PostgreSQL at %s (%.1f s)", url, time.monotonic() - started)
    # SIGINT is PostgreSQL's "fast" shutdown: it disconnects clients instead of waiting for them.
    return EmbeddedServer(url, process, signal.SIGINT, cleanup)


def _postgres_bin_dir() -> Path:
    # find_spec locates the wheel without importing it: importing pgserver creates lock files
    # and runtime dirs that we do not use.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise RuntimeError(f"embedded PostgreSQL needs the pgserver package: {DEV_EXTRA_HINT}")
    bin_dir = Path(spec.origin).parent / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise RuntimeError(f"pgserver ships no PostgreSQL binaries in {bin_dir}: {DEV_EXTRA_HINT}")
    return bin_dir


def _postgres_account() -> Account | None:
    """The OS account to run PostgreSQL as, or None to run it as ourselves."""
    if os.geteuid() != 0:
        return None
    entry = _system_user(PG_SYSTEM_USER)
    return Account(entry.pw_uid, entry.pw_gid)


def _system_user(name: str) -> pwd.struct_passwd:
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    command = ["useradd", "--system", "--user-group", "--no-create-home"]
    command += ["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name]
    try:
        subprocess.run(command, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        # Also reached when a concurrent start created the user first, hence the lookup below.
        logger.debug("useradd %s failed: %s", name, exc)
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    # No useradd (Alpine/busybox) or a read-only /etc/passwd: nobody still beats not starting.
    logger.warning("could not create system user %r; running PostgreSQL as nobody", name)
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        raise RuntimeError(f"running as root and cannot create system user {name!r}") from None


def _grant_access(install_dir: Path) -> None:
    """Let the unprivileged PostgreSQL account run its installation.

    Needed when the venv lives under a 0700 directory or was installed under a strict umask.
    Only search (x) is added to ancestors, never listing (r).
    """
    _grant_search(install_dir.parent)
    for dirpath, _dirnames, filenames in os.walk(install_dir):
        _add_mode(Path(dirpath), stat.S_IROTH | stat.S_IXOTH)
        for filename in filenames:
            path = Path(dirpath, filename)
            executable = path.stat().st_mode & stat.S_IXUSR
            _add_mode(path, stat.S_IROTH | (stat.S_IXOTH if executable else 0))


def _grant_search(directory: Path) -> None:
    for path in (directory, *directory.parents):
        _add_mode(path, stat.S_IXOTH)


def _add_mode(path: Path, bits: int) -> None:
    mode = stat.S_IMODE(path.lstat().st_mode)
    if mode & bits != bits and not path.is_symlink():
        logger.info("chmod %o %s so that PostgreSQL can use it", mode | bits, path)
        path.chmod(mode | bits)


def _chown_tree(path: Path, account: Account | None) -> None:
    if account is None or path.stat().st_uid == account.uid:
        return
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, account.uid, account.gid)
        for name in (*dirnames, *filenames):
            os.lchown(Path(dirpath, name), account.uid, account.gid)


def _ensure_cluster(bin_dir: Path, data: Path, account: Account | None) -> None:
    if (data / "PG_VERSION").is_file():
        # The cluster may have been created by a run under another user (root vs. not root).
        _chown_tree(data, account)
        return
    if data.exists() and any(data.iterdir()):
        raise RuntimeError(f"{data} is not a PostgreSQL data directory; move it out of the way")
    # initdb works in a staging dir renamed into place at the end, so a run interrupted during
    # initdb leaves no half-made cluster that later starts would try to reuse.
    staging = data.with_name(data.name + ".initdb")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700)
    _chown_tree(staging, account)
    started = time.monotonic()
    _initdb(bin_dir, staging, _data_dir_argument(staging, account), account)
    staging.replace(data)
    logger.info("created PostgreSQL cluster in %s (%.1f s)", data, time.monotonic() - started)


def _initdb(bin_dir: Path, data: Path, data_arg: str, account: Account | None) -> None:
    # Trust auth on local and 127.0.0.1/::1 lines; the bootstrap role is the superuser. No
    # locale and TZ=UTC keep sorting and timestamps the same on every machine. --no-sync: a
    # dev cluster lost in an OS crash is simply re-created.
    argv = [str(bin_dir / "initdb"), "-D", data_arg, "-U", PG_ROLE, "--auth=trust"]
    argv += ["--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions"]
    result = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=data,
        env={**os.environ, "TZ": "UTC"},
        check=False,
        **run_as(account),
    )
    if result.returncode != 0:
        output = result.stdout.decode(errors="replace")
        raise RuntimeError(f"initdb failed with status {result.returncode}:\n{output}")


def _data_dir_argument(data: Path, account: Account | None) -> str:
    """How to name the data dir to PostgreSQL (and initdb), which run with `cwd=data`.

    Run as another account, PostgreSQL may not be allowed to walk the path down to `data`: /root
    is 0700, and pytest resets /tmp/pytest-of-root to 0700 whenever any session starts, even
    while our server is starting. subprocess changes into `cwd` while still root, so
    /proc/self/cwd reaches the directory without walking the path; PostgreSQL then reports
    data_directory as /proc/self/cwd.
    """
    if account is None:
        return str(data)
    if PROC_SELF_CWD.is_dir():
        return str(PROC_SELF_CWD)
    # No procfs (root on macOS): open the path up instead, and hope nothing closes it again.
    _grant_search(data.parent)
    return str(data)


def _remove_stale_pid_file(data: Path) -> None:
    """Remove postmaster.pid unless its PostgreSQL is still running.

    PostgreSQL only checks that the recorded pid is alive. After a crash, and in containers where
    pids restart from 1 on every run, that pid often belongs to some unrelated process, and
    PostgreSQL would refuse to start.
    """
    pid_file = data / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
    except FileNotFoundError:
        return
    except ValueError:
        pid = 0
    if pid > 0 and _is_postmaster(pid, data):
        raise RuntimeError(
            f"PostgreSQL (pid {pid}) is already running on {data}; "
            "another process uses this directory, stop it or use a different one"
        )
    logger.info("removing stale %s (pid %d is not running PostgreSQL)", pid_file, pid)
    pid_file.unlink(missing_ok=True)


def _is_postmaster(pid: int, data: Path) -> bool:
    if not PROC_SELF_CWD.is_dir():
        # No procfs (macOS): err on the side of "running"; PostgreSQL will then explain.
        return _pid_alive(pid)
    # PostgreSQL works inside its data dir, whatever -D said. An unreadable cwd means another
    # user's process, and PostgreSQL only runs as the owner of its data dir.
    try:
        return Path(f"/proc/{pid}/cwd").samefile(data)
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _socket_dir(data_arg: str, account: Account | None) -> tuple[str, Callable[[], None] | None]:
    """Directory for the Unix socket, and how to clean it up when the server stops."""
    if len(os.fsencode(data_arg)) + len("/.s.PGSQL.65535") <= MAX_UNIX_SOCKET_PATH:
        return data_arg, None
    short = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))
    _chown_tree(short, account)
    logger.info("%s is too long for a Unix socket path; using %s", data_arg, short)
    return str(short), lambda: shutil.rmtree(short, ignore_errors=True)


def _postgres_argv(bin_dir: Path, data_arg: str, port: int, socket_dir: str) -> list[str]:
    # Durability is pointless for throwaway dev and test data, and fsync dominates test time.
    settings = {
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": f'"{socket_dir}"',  # quoted: a list, paths may have spaces
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
    }
    argv = [str(bin_dir / "postgres"), "-D", data_arg, "-p", str(port)]
    for name, value in settings.items():
        argv += ["-c", f"{name}={value}"]
    return argv


def _postmaster_ready(data: Path, process: Process) -> bool:
    # The status line of postmaster.pid turns to "ready" once connections are accepted, i.e.
    # after crash recovery; a bare TCP connect would succeed earlier and then be refused.
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return False
    if len(lines) <= PID_FILE_STATUS_LINE:
        return False
    return lines[0].strip() == str(process.pid) and lines[PID_FILE_STATUS_LINE].strip() == "ready"
