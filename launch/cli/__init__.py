"""The ``clickstream`` command: one module per subcommand (``register`` + ``run``)."""


class CliError(Exception):
    """A failure to report as one line on stderr with a non-zero exit code."""
