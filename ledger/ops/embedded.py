"""Private Redis and Postgres processes under a local folder, on free ports.

Used by `convenio up` when no REDIS_URL / DATABASE_URL is configured, and by the tests, so
neither needs a server already running. Postgres refuses to run as root, so as root it runs
as the `postgres` system user (created by Debian's package) with the folder owned by it.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DEBIAN_PACKAGES = {"redis-server": "redis-server", "postgres": "postgresql"}


class MissingServer(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_bin() -> Path | None:
    """Debian keeps the server binaries off PATH, one folder per major version."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    if dirs:
        return Path(dirs[-1])
    found = shutil.which("postgres")
    return Path(found).resolve().parent if found else None


def ensure_installed(say=print) -> None:
    """Install redis-server and postgresql from Debian's packages when missing (as root)."""
    missing = []
    if not shutil.which("redis-server"):
        missing.append(DEBIAN_PACKAGES["redis-server"])
    if _postgres_bin() is None:
        missing.append(DEBIAN_PACKAGES["postgres"])
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise MissingServer(
            "Missing servers. Install them with:  sudo apt-get install -y "
            + " ".join(missing)
            + "  (or set REDIS_URL and DATABASE_URL to servers you already run)"
        )
    say(f"installing {' '.join(missing)} from Debian's packages ...")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, env=env)


def _wait(check, what: str, proc: subprocess.Popen, log: Path, seconds: float = 30.0) -> None:
    """Wait for a server to answer; on failure stop it, so nothing is left running."""
    deadline = time.monotonic() + seconds
    problem = f"{what} did not become ready within {seconds:.0f} s"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            problem = f"{what} exited during start-up (code {proc.returncode})"
            break
        if check():
            return
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    raise RuntimeError(f"{problem}; see {log}")


def _reachable_by_others(path: Path) -> bool:
    """Every existing folder above `path` lets other users pass through."""
    return all(os.stat(p).st_mode & 0o001 for p in path.resolve().parents if p.exists())


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class EmbeddedRedis:
    data_dir: Path
    appendfsync: str = "always"  # every acknowledged decision on disk before the reply
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        aof = (
            ["--appendonly", "no"]
            if self.appendfsync == "off"
            else ["--appendonly", "yes", "--appendfsync", self.appendfsync]
        )
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--save",
                "",
                *aof,
                "--daemonize",
                "no",
                "--logfile",
                str(self.data_dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
        )
        _wait(lambda: _accepts(self.port), "redis-server", self.proc, self.data_dir / "redis.log")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    durable: bool = True  # tests turn fsync off: they never survive a power cut anyway
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    database: str = "convenio"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def _as_owner(self) -> dict:
        if os.geteuid() != 0:
            return {}
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise MissingServer(
                "running as root needs the `postgres` system user (apt-get install postgresql)"
            ) from None
        return {"user": "postgres", "group": "postgres"}

    def start(self) -> EmbeddedPostgres:
        bindir = _postgres_bin()
        if bindir is None:
            raise MissingServer("postgres is not installed (apt-get install postgresql)")
        owner = self._as_owner()
        if owner and not _reachable_by_others(self.data_dir):
            # e.g. a checkout under /root: the postgres user could not reach it
            tag = hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:12]
            self.data_dir = Path("/var/tmp") / f"convenio-postgres-{tag}"  # noqa: S108 - ours, by name
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if owner:
            shutil.chown(self.data_dir, "postgres", "postgres")
        pgdata = self.data_dir / "pgdata"
        if not (pgdata / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    *([] if self.durable else ["--no-sync"]),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                **owner,
            )
        opts = ["-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.data_dir}"]
        if not self.durable:
            opts += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        log = open(self.data_dir / "postgres.log", "ab")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(
            [str(bindir / "postgres"), "-D", str(pgdata), "-p", str(self.port), *opts],
            stdout=log,
            stderr=log,
            **owner,
        )
        ready = [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        _wait(lambda: subprocess.run(ready).returncode == 0, "postgres", self.proc, self.data_dir / "postgres.log", 60)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown: clean, no recovery next start
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
