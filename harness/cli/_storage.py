"""``harness storage``: study storages (``harness storage serve``).

``serve`` runs Optuna's gRPC storage proxy in front of a database, so that many workers
(``harness search --storage grpc://HOST:PORT``) share one study without each holding
database connections. It stops on SIGINT (Ctrl-C) or SIGTERM with exit status 0: being
asked to stop is how a server ends.
"""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["register", "storage_app"]

STOP_GRACE_SECONDS = 5.0  # requests in flight get this long to finish on stopping

storage_app = typer.Typer(
    name="storage", help="Study storages.", no_args_is_help=True, add_completion=False
)

Opt = typer.Option


@storage_app.command("serve")
def serve_command(
    url: Annotated[
        str,
        typer.Argument(
            metavar="URL", help="Database URL (postgresql://..., sqlite:///...); not a journal."
        ),
    ],
    host: Annotated[str, Opt("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, Opt("--port", min=1, max=65535, help="Port to listen on.")] = 13000,
) -> None:
    """Serve a database to many workers through Optuna's gRPC storage proxy.

    Workers then use --storage grpc://HOST:PORT. Stops on Ctrl-C or SIGTERM (exit 0).
    """
    import signal
    import threading

    from harness.search._storage import create_proxy_server

    server = create_proxy_server(url, host=host, port=port)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    # NOTE: handlers go in before the server starts, so that a SIGTERM sent as soon as the
    # line below is printed still stops it cleanly.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        address = f"[{host}]" if ":" in host else host
        typer.echo(
            f"storage proxy listening on {address}:{port}; workers: --storage "
            f"grpc://{address}:{port}"
        )
        while not stop.wait(0.5):
            pass
    finally:
        server.stop(grace=STOP_GRACE_SECONDS).wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    typer.echo("storage proxy stopped", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(storage_app, name="storage")
