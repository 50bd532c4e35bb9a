"""Test support shipped with agent-core, for this project and for third-party plugins.

``servers`` starts a real API server on a loopback port; ``plugin`` is a pytest plugin
(registered through the ``pytest11`` entry point) with fixtures built on it and the backend
conformance suite.
"""
