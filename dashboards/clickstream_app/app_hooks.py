"""Server lifecycle of the app: start the one shared store poller, stop it on unload.

Under ``bokeh serve dashboards/clickstream_app --args <flags>`` the Settings are built
here once, from those flags over ``CLICKSTREAM_*`` env; ``clickstream dashboard`` attaches
its own Settings first and this keeps them.
"""

import sys

from dashboards.runtime import ATTR, attach, detach, settings_from_argv

_ARGV = list(sys.argv[1:])  # Bokeh sets sys.argv only while this module runs


def on_server_loaded(server_context):
    if getattr(server_context, ATTR, None) is None:
        attach(server_context, settings_from_argv(_ARGV))


def on_server_unloaded(server_context):
    detach(server_context)
