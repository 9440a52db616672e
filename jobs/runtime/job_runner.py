"""A warm Python for the stage jobs, beside the warm Spark session (``make spark-server`` starts both).

A stage run as a Spark Connect client is a short process that spends ~1.9 s importing pyspark's Connect client,
pandas and pyarrow before its first query (measured at scale M on the 2-core bench machine): a fifth of a tick
through Airflow. This server imports them once and forks a child per job. Each job is still a process of its
own, with its own Spark session, environment, working directory, output and exit code; it just starts with
those modules loaded. Nothing of the project is imported before the fork, so a job runs the code on disk.

The Airflow operator uses it when the Spark connection's extra names its socket (``job_runner``, as
``spark_server.airflow_connection`` writes it) and starts the job itself otherwise. Local only: a Unix socket,
mode 0600, the jobs running as the server's user.

Protocol, one job per connection: the client sends a JSON line (module, args, env, cwd) with the file
descriptor the job's stdout and stderr go to attached; the server answers ``pid <n>``, then ``exit <code>``
when the job ends. A client that goes away takes its job with it (SIGTERM to the job's process group).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import json
import os
import runpy
import select
import signal
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

# What every stage imports before its first query (pyspark.sql.connect.session imports pandas at its top).
PRELOAD = ("numpy", "pandas", "pyarrow", "pyspark.sql.connect.session", "yaml")
_PROJECT = ("jobs", "schemas")  # imported fresh by each job, from its own working directory


def default_socket(port: int) -> str:
    """The runner's socket beside the Connect server on ``port``."""
    return str(Path(tempfile.gettempdir()) / f"mrs-jobs-{port}.sock")


# -- the client (the Airflow operator) ------------------------------------------------------------------------
class JobRunnerUnavailable(OSError):
    pass


def run_job(
    path: str,
    module: str,
    args: list[str],
    env: dict[str, str],
    cwd: str,
    on_line: Callable[[str], None],
    on_pid: Callable[[int], None] = lambda pid: None,
) -> int:
    """Run ``python -m module args`` as a child of the runner at ``path``; each output line goes to ``on_line``.
    Returns the exit code (negative: killed by that signal). Raises JobRunnerUnavailable if nothing listens."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise JobRunnerUnavailable(f"no job runner at {path}: {e}") from e
    read_end, write_end = os.pipe()
    with sock, os.fdopen(read_end, "rb") as output, sock.makefile("r") as replies:
        request = {"module": module, "args": args, "env": env, "cwd": cwd}
        socket.send_fds(sock, [json.dumps(request).encode() + b"\n"], [write_end])
        os.close(write_end)  # the job holds the only write end now: EOF on output when it ends
        kind, _, pid = replies.readline().partition(" ")
        if kind != "pid":
            raise RuntimeError(f"job runner at {path} refused {module}: {kind} {pid}".strip())
        on_pid(int(pid))
        for line in output:
            on_line(line.decode(errors="replace").rstrip("\n"))
        kind, _, code = replies.readline().partition(" ")
        if kind != "exit":
            raise RuntimeError(f"job runner at {path} lost {module} (pid {pid.strip()})")
        return int(code)


# -- the server --------------------------------------------------------------------------------------------------
def _exec_job(request: dict, out_fd: int) -> None:
    """In the forked job: become ``python -m module`` in the request's directory and environment, then exit."""
    code = 1
    try:
        os.setpgid(0, 0)  # its own process group, so that stopping it stops anything it starts
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.close(out_fd)
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        time.tzset()
        for name in [m for m in sys.modules if m.split(".")[0] in _PROJECT]:
            del sys.modules[name]
        # As ``python -m`` would: the working directory first, then PYTHONPATH, then the rest.
        extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[:] = [request["cwd"], *extra, *[p for p in sys.path[1:] if p not in extra]]
        sys.argv = [request["module"], *request["args"]]
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            atexit._run_exitfuncs()  # what an interpreter's exit would run; os._exit does not
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _supervise(conn: socket.socket, request: dict, out_fd: int) -> None:
    """In a forked handler: fork the job, report its pid and exit code; kill it if the client goes away."""
    pid = os.fork()
    if pid == 0:
        conn.close()
        _exec_job(request, out_fd)
    os.close(out_fd)
    with contextlib.suppress(OSError):  # set on both sides of the fork: the group exists before its pid is sent
        os.setpgid(pid, pid)
    conn.sendall(f"pid {pid}\n".encode())
    # Woken by the job's end (a pidfd on Linux) or by the client; elsewhere, a short poll. The task waits for
    # the exit line after the job's output ends, so a long poll would add to every task.
    waits = [conn, os.pidfd_open(pid)] if hasattr(os, "pidfd_open") else [conn]
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        readable, _, _ = select.select(waits, [], [], None if len(waits) > 1 else 0.05)
        if conn in readable and not conn.recv(1):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            _, status = os.waitpid(pid, 0)
            return
    conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())


def _receive(conn: socket.socket) -> tuple[dict, int]:
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 1)
    if len(fds) != 1:
        raise ValueError("a job request carries exactly one file descriptor (its output)")
    while not data.endswith(b"\n"):
        more = conn.recv(1 << 16)
        if not more:
            raise ValueError("job request cut short")
        data += more
    request = json.loads(data)
    missing = {"module", "args", "env", "cwd"} - set(request)
    if missing:
        raise ValueError(f"job request lacks {sorted(missing)}")
    return request, fds[0]


def serve(path: str) -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    # Handlers are reaped by the kernel; each handler waits for its own job (SIGCHLD reset after the fork).
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        server.bind(path)
    finally:
        os.umask(old)
    server.listen(16)

    def stop(*_):
        server.close()
        if os.path.exists(path):
            os.unlink(path)
        os._exit(0)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    print(f"Job runner ready at {path} (preloaded {', '.join(PRELOAD)})", flush=True)
    parent = os.getppid()
    server.settimeout(5)
    while True:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            if os.getppid() != parent:  # the server that started it is gone: so are its jobs' Spark sessions
                stop()
            continue
        conn.settimeout(None)
        try:
            request, out_fd = _receive(conn)
        except (OSError, ValueError) as e:
            conn.sendall(f"error {e}\n".encode())
            conn.close()
            continue
        if os.fork() == 0:
            server.close()
            for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_DFL)
            try:
                _supervise(conn, request, out_fd)
            finally:
                os._exit(0)
        conn.close()
        os.close(out_fd)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--socket", required=True, help="Unix socket path to listen on")
    serve(p.parse_args(argv).socket)


if __name__ == "__main__":
    main()
