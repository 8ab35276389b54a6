"""``babelrank serve``: the HTTP API under uvicorn, with one or more worker processes.

The command line does not import the server. It resolves both settings (`Settings`,
`ServerSettings`), refuses an embedded store that another process holds before any model
loads, hands the settings over as one serialised object (`babelrank.config.dump_serve_config`
in ``BABELRANK_SERVE_CONFIG``) and names the server's app factory to uvicorn, which builds
the app in each worker process.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys

from babelrank.apps.cli.errors import UsageError
from babelrank.apps.cli.output import PROG
from babelrank.apps.cli.settings import server_settings_from_args, settings_from_args
from babelrank.config import (
    LOOPBACK_HOSTS,
    SERVE_CONFIG_ENV,
    ServerSettings,
    Settings,
    dump_serve_config,
)
from babelrank.store.lock import lock_store

logger = logging.getLogger(__name__)

APP_FACTORY = "babelrank.apps.server:app_from_env"
"""The server's app factory, as uvicorn imports it (in each worker process)."""
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def cmd_serve(args: argparse.Namespace) -> int:
    """``babelrank serve``: check the settings and the store, then run uvicorn until stopped."""
    import uvicorn

    settings = settings_from_args(args)
    server = serve_settings(args)
    if args.workers < 1:
        raise UsageError("--workers must be >= 1")
    if args.workers > 1 and not settings.chroma_host:
        raise UsageError("--workers > 1 needs a Chroma server: an embedded store allows one process. "
                         "Start `chroma run --path DIR --port 8001` and pass --chroma-host/--chroma-port")
    location = store_location(settings)  # a locked store fails here, with a one-line message
    os.environ[SERVE_CONFIG_ENV] = dump_serve_config(settings, server)
    if not args.quiet:
        print(_startup_message(args, settings, server, location), file=sys.stderr)
    log_level = "warning" if args.quiet else ("debug" if (args.verbose or 0) > 1 else "info")
    try:
        uvicorn.run(APP_FACTORY, factory=True, host=args.host, port=args.port, workers=args.workers,
                    log_level=log_level)
    except SystemExit as exc:  # uvicorn exits when the app fails to start (it has logged why)
        return 1 if exc.code else 0
    return 0


def serve_settings(args: argparse.Namespace) -> ServerSettings:
    """`ServerSettings` of ``serve``: the bound name (``--host``) is one the server answers to."""
    server = server_settings_from_args(args)
    if args.host not in WILDCARD_HOSTS and args.host not in server.allowed_hosts:
        server = dataclasses.replace(server, allowed_hosts=(*server.allowed_hosts, args.host))
    if args.host not in LOOPBACK_HOSTS and not server.api_token:
        logger.warning("serving on %s without an API token: anyone who can reach it can read and change the "
                       "collection (set BABELRANK_API_TOKEN); it answers requests addressed to its IP addresses, "
                       "localhost and %s (add names with BABELRANK_ALLOWED_HOSTS)", args.host,
                       ", ".join(server.allowed_hosts) or "no other name")
    return server


def store_location(settings: Settings) -> str:
    """Where the collection is stored: the Chroma server's URL or the embedded store's folder.

    Raises:
        StoreLockedError: another process holds the embedded store (checked, then let go).
    """
    if settings.chroma_host:
        return f"http://{settings.chroma_host}:{settings.chroma_port}"
    lock = lock_store(settings.store_path)
    lock.release()
    return str(lock.path.parent)


def _startup_message(args: argparse.Namespace, settings: Settings, server: ServerSettings, location: str) -> str:
    where = f"http://{args.host}:{args.port}"
    if args.workers > 1:
        return (f"{PROG}: serving collection {settings.collection!r} on {where} with {args.workers} workers "
                f"(API docs: {where}/docs)")
    return (f"{PROG}: serving collection {settings.collection!r} at {location} on {where} "
            f"(API docs: {where}/docs; auth: {'bearer token' if server.api_token else 'none'})")
