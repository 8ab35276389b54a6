"""The ``babelrank`` command line: ingest, query, info, delete, serve, eval and compare.

Configuration precedence: command-line flags > ``BABELRANK_*`` environment variables >
config file (``--config FILE`` or ``BABELRANK_CONFIG``; TOML or JSON, keys = `Settings`
field names) > defaults (resolved by `babelrank.config`).

Exit codes: 0 success, 1 failure, 2 bad usage or input, 130 interrupted.

Modules: `entry` (`main`), `parser` (the options), `settings` (flags to settings),
`commands` (ingest, query, info, delete), `serve`, `evaluation` (eval, compare),
`output` (tables), `errors` (exit codes and messages).
"""

from babelrank.apps.cli.entry import main

__all__ = ["main"]
