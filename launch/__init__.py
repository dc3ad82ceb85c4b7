"""The entry layer above the roles: the ``clickstream`` command (``launch.cli``), the demo
(``launch.demo``, the composition root) and the local server launcher (``launch.services``).

It may import every role and the core; nothing imports it (see ARCHITECTURE.md)."""
