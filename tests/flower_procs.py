"""Flower's Deployment Engine on 127.0.0.1 for tests: a SuperLink, SuperNodes, and their cleanup.

:func:`deployment` starts ``flower-superlink --insecure`` and ``nodes`` ``flower-supernode
--insecure`` processes (node config ``partition-id=i num-partitions=nodes``), writes a
``$FLWR_HOME/config.toml`` naming a federation for that SuperLink, waits until every node is
activated, and on the way out stops every process it started by process group, then what the
SuperLink/SuperNodes detached (SuperExec, ServerApp, ClientApps) by PID: those name one of the
ports. When the body succeeded it also checks that nothing it started is alive and nothing
listens on its ports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent  # flwr, flower-superlink, flower-supernode, fedadagent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port`` (a bind over TIME_WAIT still works)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def wait_for(path: Path, text: str, timeout: float, count: int = 1) -> None:
    """Wait until ``path`` says ``text`` ``count`` times; TimeoutError with its text if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text(errors="replace").count(text) >= count:
            return
        time.sleep(0.5)
    said = path.read_text(errors="replace") if path.exists() else "(no file)"
    raise TimeoutError(f"{path.name} never said {text!r} {count} time(s):\n{said[-5000:]}")


def processes_mentioning(marker: str) -> list[int]:
    """PIDs whose command line contains ``marker`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if marker in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                    found.append(int(entry.name))
    return found


def stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each process's group (SIGKILL after 10 s) and reap it."""
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@dataclass
class Deployment:
    """A running SuperLink + SuperNodes: ``flwr run <app> <federation>`` with ``env``."""

    env: dict[str, str]  # FLWR_HOME, PATH with the venv's bin, no runtime dependency install
    federation: str
    folder: Path  # FLWR_HOME, the logs (superlink.log, node<i>.log) and the SuperLink's state
    procs: list[subprocess.Popen] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)

    def logs(self) -> str:
        """The tails of the SuperLink's and SuperNodes' logs (for a failing assertion)."""
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted(self.folder.glob("*.log"))
        )

    def leftovers(self) -> list[int]:
        """Processes still naming one of the ports (what the SuperLink/SuperNodes detached)."""
        return sorted({pid for port in self.ports for pid in processes_mentioning(f":{port}")})


@contextlib.contextmanager
def deployment(folder: Path, nodes: int, *, federation: str = "deploy") -> Iterator[Deployment]:
    """A SuperLink and ``nodes`` SuperNodes on 127.0.0.1, stopped on exit (module doc)."""
    folder.mkdir(parents=True, exist_ok=True)
    link = free_port()
    env = {
        **os.environ,
        "FLWR_HOME": str(folder),
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        # SuperLink and SuperNodes start flower-superexec and the apps by name
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    (folder / "config.toml").write_text(
        f'[superlink]\ndefault = "{federation}"\n\n[superlink.{federation}]\n'
        f'address = "127.0.0.1:{link}"\ninsecure = true\n'
    )
    dep = Deployment(env, federation, folder, ports=[link])

    def spawn(name: str, *args: str) -> Path:
        log = folder / f"{name}.log"
        with log.open("w") as out:
            dep.procs.append(
                subprocess.Popen(
                    [str(BIN / args[0]), *args[1:]],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=folder,
                    start_new_session=True,
                )
            )
        return log

    try:
        link_log = spawn(
            "superlink",
            "flower-superlink",
            "--insecure",
            "--port",
            str(link),
            "--database",
            str(folder / "state.db"),
        )
        wait_for(link_log, "Uvicorn running", 60)
        for i in range(nodes):
            port = free_port()  # each SuperNode's own ClientAppIo (Runtime HTTP API) port
            dep.ports.append(port)
            spawn(
                f"node{i}",
                "flower-supernode",
                "--insecure",
                "--superlink",
                f"127.0.0.1:{link}",
                "--port",
                str(port),
                "--node-config",
                f"partition-id={i} num-partitions={nodes}",
            )
        wait_for(link_log, "Activated node_id", 60, count=nodes)
        yield dep
    finally:
        stop(dep.procs)
        deadline = time.monotonic() + 20
        while dep.leftovers() and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid in dep.leftovers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    alive = [p.args[0] for p in dep.procs if p.poll() is None]
    assert not alive, f"still running: {alive}"
    assert not dep.leftovers(), f"detached processes left: {dep.leftovers()}"
    busy = [port for port in dep.ports if listening(port)]
    assert not busy, f"something still listens on {busy}"
