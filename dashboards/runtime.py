"""Per-server state of the dashboard: its Settings and its one StorePoller.

The runtime hangs on Bokeh's server context (one per application per server), so two
servers in one process (tests, the demo) keep separate pollers. ``attach`` is called from
the app's ``on_server_loaded`` (``bokeh serve``) or by ``dashboards.server`` before it
(the CLI, with Settings it already built); ``detach`` stops the poller.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clickstream.settings import Settings, add_settings_arguments
from dashboards.poller import StoreFactory, StorePoller, default_store_factory

ATTR = "clickstream_runtime"
SETTINGS_GROUPS = ("general", "store", "dashboard")


@dataclass
class Runtime:
    settings: Settings
    poller: StorePoller


def settings_from_argv(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``bokeh serve ... --args <flags>`` over ``CLICKSTREAM_*`` env over defaults."""
    parser = argparse.ArgumentParser(prog="clickstream_app", description="clickstream dashboard app")
    add_settings_arguments(parser, SETTINGS_GROUPS)
    return Settings.from_args(parser.parse_args(list(argv)), environ)


def attach(server_context: Any, settings: Settings,
           store_factory: StoreFactory = default_store_factory) -> Runtime:
    """Start the poller for this server context (idempotent: an attached runtime is kept)."""
    existing = getattr(server_context, ATTR, None)
    if existing is not None:
        return existing
    runtime = Runtime(settings, StorePoller(settings, store_factory).start())
    setattr(server_context, ATTR, runtime)
    return runtime


def detach(server_context: Any) -> None:
    runtime = getattr(server_context, ATTR, None)
    if runtime is not None:
        runtime.poller.stop()
        setattr(server_context, ATTR, None)


def runtime_of(doc: Any) -> Runtime:
    """The runtime of the server serving ``doc`` (a session's ``curdoc()``)."""
    runtime = getattr(doc.session_context.server_context, ATTR, None)
    if runtime is None:
        raise RuntimeError("the clickstream dashboard's poller is not running "
                           "(serve the app directory, whose app_hooks.py starts it)")
    return runtime
