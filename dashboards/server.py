"""Run the dashboard's Bokeh server in-process: in the foreground (CLI) or on a thread (demo).

``start_dashboard(settings)`` returns once the server listens; its handle has ``url``,
``port`` and ``poller`` and ``stop()`` (idempotent, joins the thread, stops the poller).
Binds ``settings.dashboard_address`` (loopback by default); websocket origins are the
listening host:port plus ``settings.dashboard_allow_websocket_origin``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bokeh.application import Application
from bokeh.application.handlers import DirectoryHandler, Handler
from bokeh.server.server import Server
from tornado.ioloop import IOLoop

from clickstream.settings import Settings
from dashboards.poller import StoreFactory, StorePoller, default_store_factory
from dashboards.runtime import ATTR, attach

APP_DIR = Path(__file__).resolve().parent / "clickstream_app"
APP_PATH = "/" + APP_DIR.name


class _PresetSettings(Handler):
    """Attaches the caller's Settings before the app's own ``app_hooks`` runs."""

    def __init__(self, settings: Settings, store_factory: StoreFactory) -> None:
        super().__init__()
        self._settings = settings
        self._factory = store_factory

    def modify_document(self, doc: Any) -> None:
        return None

    def on_server_loaded(self, server_context: Any) -> None:
        attach(server_context, self._settings, self._factory)


def make_application(settings: Settings, store_factory: StoreFactory = default_store_factory) -> Application:
    return Application(_PresetSettings(settings, store_factory), DirectoryHandler(filename=str(APP_DIR)))


def websocket_origins(settings: Settings, port: int) -> list[str]:
    hosts = {f"{settings.dashboard_address}:{port}", f"localhost:{port}", f"127.0.0.1:{port}"}
    return sorted(hosts | set(settings.dashboard_allow_websocket_origin))


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def make_server(settings: Settings, io_loop: IOLoop | None = None,
                store_factory: StoreFactory = default_store_factory) -> Server:
    """A listening (not yet started) Bokeh server for the app; port 0 picks a free port."""
    port = settings.dashboard_port or _free_port(settings.dashboard_address)
    return Server({APP_PATH: make_application(settings, store_factory)}, io_loop=io_loop,
                  address=settings.dashboard_address, port=port,
                  allow_websocket_origin=websocket_origins(settings, port))


def url_of(server: Server) -> str:
    host = server.address or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{server.port}{APP_PATH}"


@dataclass
class DashboardHandle:
    url: str
    port: int
    _server: Server
    _loop: IOLoop
    _thread: threading.Thread
    poller: StorePoller
    _stopped: bool = field(default=False)

    def stop(self) -> None:
        """Stop serving, unload the app (stopping its poller) and join the thread."""
        if self._stopped:
            return
        self._stopped = True

        def shutdown() -> None:
            self._server.unlisten()
            self._server.stop()
            self._loop.stop()

        self._loop.add_callback(shutdown)
        self._thread.join(timeout=30)


def start_dashboard(settings: Settings, store_factory: StoreFactory = default_store_factory,
                    timeout_s: float = 30.0) -> DashboardHandle:
    """Serve the dashboard on a background thread; returns when it accepts connections."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    def serve() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        loop = IOLoop.current()
        try:
            server = make_server(settings, loop, store_factory)
            server.start()
        except BaseException as exc:
            box["error"] = exc
            ready.set()
            return
        box["server"], box["loop"] = server, loop

        def loaded() -> None:  # queued after the app's load hook, which starts the poller
            context = server._tornado.applications[APP_PATH].server_context
            box["poller"] = getattr(context, ATTR).poller
            ready.set()

        loop.add_callback(loaded)
        loop.start()
        loop.close(all_fds=True)

    thread = threading.Thread(target=serve, name="clickstream-dashboard-server", daemon=True)
    thread.start()
    if not ready.wait(timeout_s):
        raise RuntimeError(f"the dashboard did not start within {timeout_s:.0f} s")
    if "error" in box:
        raise box["error"]
    server = box["server"]
    return DashboardHandle(url=url_of(server), port=server.port, _server=server, _loop=box["loop"],
                           _thread=thread, poller=box["poller"])
