"""The ``agent`` command: one module per command group."""
