"""The ``clickstream`` command: one module per subcommand (``register`` + ``run``)."""
