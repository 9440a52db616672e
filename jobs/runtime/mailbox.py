"""A local mailbox: an SMTP server on loopback that keeps every message it receives in a Maildir, so the demo
and ``make airflow`` show the alert emails without a real mail server.

    python -m jobs.runtime.mailbox --port 8025 --dir .data/mailbox     # serve until interrupted
"""

from __future__ import annotations

import argparse
import mailbox
import socket
import threading
from email.message import Message
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(directory: Path, port: int | None = None) -> Controller:
    """Serve SMTP on 127.0.0.1 (a free port unless given) in a background thread; ``.port`` says where."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    controller = Controller(Mailbox(str(directory)), hostname="127.0.0.1", port=port or free_port())
    controller.start()
    return controller


def messages(directory: Path) -> list[Message]:
    """Every message received so far, oldest first."""
    if not directory.is_dir():
        return []
    box = mailbox.Maildir(str(directory), create=False)
    return sorted(box, key=lambda m: m.get_date())  # iterating a mailbox yields its messages


def smtp_connection(port: int) -> str:
    """The Airflow connection (JSON, for ``AIRFLOW_CONN_SMTP_DEFAULT``) that reaches this server."""
    return f'{{"conn_type": "smtp", "host": "127.0.0.1", "port": {port}, "extra": {{"disable_tls": true}}}}'


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=8025)
    p.add_argument("--dir", type=Path, default=Path(".data/mailbox"))
    a = p.parse_args(argv)
    controller = start(a.dir, a.port)
    print(f"mailbox: SMTP on 127.0.0.1:{controller.port}, messages in {a.dir}", flush=True)
    try:
        threading.Event().wait()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
