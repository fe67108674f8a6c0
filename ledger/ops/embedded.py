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


SLOTS = 16384  # a Redis Cluster's hash slots


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


def cluster_port() -> int:
    """A free port for a cluster node: its bus port (10000 higher) must be free too. Both below
    the kernel's ephemeral range (32768 and up), so no outgoing connection takes one meanwhile."""
    import random

    while True:
        port = random.randint(10_000, 22_700)  # noqa: S311 - a port, not a secret
        if not _accepts(port) and not _accepts(port + 10_000):
            return port


def _distinct(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = cluster_port()
        if all(abs(port - p) not in (0, 10_000) for p in ports):
            ports.append(port)
    return ports


def _redis_cli(port: int, *args: str, timeout: float = 10) -> str:
    done = subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    return done.stdout


def _info(port: int, section: str) -> dict[str, str]:
    """`INFO section` (or `CLUSTER INFO` for "cluster-state") of a node as a dict; {} if it does not answer."""
    try:
        text = _redis_cli(port, *(["CLUSTER", "INFO"] if section == "cluster-state" else ["INFO", section]), timeout=2)
    except subprocess.TimeoutExpired:
        return {}
    return dict(line.split(":", 1) for line in text.replace("\r", "").splitlines() if ":" in line)


@dataclass
class EmbeddedRedisCluster:
    """A private Redis Cluster: `masters` masters with `replicas` replicas each, one
    redis-server per node under `data_dir/<port>/`.

    The first start creates the cluster (`redis-cli --cluster create`); the ports are kept in
    `data_dir/ports` and the nodes' `nodes.conf` beside their data, so a later start (`./run`
    again) brings back the same cluster with its data. A node's timeout of `node_timeout_ms`
    decides how soon a replica takes over from a master that stopped answering."""

    data_dir: Path
    masters: int = 3
    replicas: int = 0
    appendfsync: str = "always"
    node_timeout_ms: int = 2000
    #: more redis-server options for every node (a test slows their loading down)
    options: tuple[str, ...] = ()
    procs: dict[int, subprocess.Popen] = field(default_factory=dict)
    ports: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Any node will do: clients read the slot map from it. The first live master's."""
        live = [p for p in self.master_ports() if self._alive(p)] or self.ports
        return f"redis://127.0.0.1:{live[0]}/0"

    @property
    def nodes(self) -> str:
        """Every node, for CONVENIO_REDIS_CLUSTER_NODES: a client that finds the `url`'s node
        down reads the slot map from another."""
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def _alive(self, port: int) -> bool:
        proc = self.procs.get(port)
        return proc is not None and proc.poll() is None

    def _node_args(self, port: int) -> list[str]:
        aof = (
            ["--appendonly", "no"]
            if self.appendfsync == "off"
            else ["--appendonly", "yes", "--appendfsync", self.appendfsync]
        )
        folder = self.data_dir / str(port)
        return [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--save",
            "",
            *aof,
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(self.node_timeout_ms),
            # a replica may take over however long ago it last heard from its master
            "--cluster-replica-validity-factor",
            "0",
            "--daemonize",
            "no",
            "--logfile",
            str(folder / "redis.log"),
            *self.options,
        ]

    def start_node(self, port: int) -> None:
        folder = self.data_dir / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        self.procs[port] = subprocess.Popen(self._node_args(port), stdout=subprocess.DEVNULL)
        _wait(lambda: _accepts(port), f"redis-server :{port}", self.procs[port], folder / "redis.log")

    def start(self) -> EmbeddedRedisCluster:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ports_file = self.data_dir / "ports"
        count = self.masters * (1 + self.replicas)
        known = [int(p) for p in ports_file.read_text().split()] if ports_file.exists() else []
        fresh = len(known) != count or not all((self.data_dir / str(p) / "nodes.conf").exists() for p in known)
        self.ports = _distinct(count) if fresh else known
        if fresh:
            for p in known:
                shutil.rmtree(self.data_dir / str(p), ignore_errors=True)
            ports_file.write_text(" ".join(map(str, self.ports)))
        try:
            for port in self.ports:
                self.start_node(port)
            if fresh and self.masters < 3:  # redis-cli --cluster create wants three masters
                self._create_small()
            elif fresh:
                created = subprocess.run(
                    [
                        "redis-cli",
                        "--cluster",
                        "create",
                        *(f"127.0.0.1:{p}" for p in self.ports),
                        "--cluster-replicas",
                        str(self.replicas),
                        "--cluster-yes",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                if created.returncode != 0:
                    raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-2000:]}{created.stderr}")
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _create_small(self) -> None:
        """One or two masters, no replicas: the nodes meet and share the slots by hand."""
        if self.replicas:
            raise ValueError("a Redis Cluster with replicas needs at least three masters")
        first, *others = self.ports
        for port in others:
            _redis_cli(port, "CLUSTER", "MEET", "127.0.0.1", str(first))
        share = SLOTS // len(self.ports)
        for i, port in enumerate(self.ports):
            last = SLOTS - 1 if i == len(self.ports) - 1 else (i + 1) * share - 1
            _redis_cli(port, "CLUSTER", "ADDSLOTSRANGE", str(i * share), str(last))

    def wait_ready(self, seconds: float = 60.0) -> None:
        """Until every live node says cluster_state:ok and every live replica's link is up."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if all(self._ready(p) for p in self.ports if self._alive(p)):
                return
            time.sleep(0.1)
        states = {p: _info(p, "cluster-state").get("cluster_state") for p in self.ports if self._alive(p)}
        raise RuntimeError(f"the Redis Cluster did not become ready within {seconds:.0f} s: {states}")

    def _ready(self, port: int) -> bool:
        if _info(port, "cluster-state").get("cluster_state") != "ok":
            return False
        replication = _info(port, "replication")
        return replication.get("role") != "slave" or replication.get("master_link_status") == "up"

    def roles(self) -> dict[int, str]:
        """Each live node's role now: "master" or "slave"."""
        return {p: _info(p, "replication").get("role", "?") for p in self.ports if self._alive(p)}

    def master_ports(self) -> list[int]:
        return [p for p, role in self.roles().items() if role == "master"]

    def kill(self, port: int) -> None:
        """SIGKILL one node: no goodbye, no last write to disk (a failover test's crash)."""
        proc = self.procs[port]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def replica_of(self, master_port: int) -> int:
        """The port of a replica of this master (the first its `INFO replication` names)."""
        line = _info(master_port, "replication").get("slave0", "")
        fields = dict(part.split("=", 1) for part in line.split(",") if "=" in part)
        if "port" not in fields:
            raise RuntimeError(f"the master :{master_port} has no replica")
        return int(fields["port"])

    def pause(self, port: int) -> None:
        """SIGSTOP one node: it stays connected and answers nothing (a replica falling behind)."""
        self.procs[port].send_signal(signal.SIGSTOP)

    def cut_replicas(self, master_port: int) -> None:
        """Close this master's links to its replicas (`CLIENT KILL TYPE replica`): until a replica
        connects again, what the master writes reaches no replica."""
        _redis_cli(master_port, "CLIENT", "KILL", "TYPE", "replica", timeout=2)

    def resume(self, port: int) -> None:
        self.procs[port].send_signal(signal.SIGCONT)

    def wait_failover(self, dead_port: int, seconds: float = 30.0) -> int:
        """Until a replica has taken over the dead master's slots and the cluster is ok again;
        returns the new master's port."""
        deadline = time.monotonic() + seconds
        before = set(self.master_ports()) | {dead_port}
        while time.monotonic() < deadline:
            promoted = set(self.master_ports()) - before
            if promoted and all(
                _info(p, "cluster-state").get("cluster_state") == "ok" for p in self.ports if self._alive(p)
            ):
                return promoted.pop()
            time.sleep(0.1)
        raise RuntimeError(f"no replica took over from :{dead_port} within {seconds:.0f} s")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)  # a paused node would not hear SIGTERM
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


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
