"""Conformance suites for the backends of ``backends.py``: run by ``test_broken_backends.py`` in a
pytest of their own (this file is not collected by default: its name is not ``test_*``)."""

from __future__ import annotations

from typing import Any

from tests.kit import backends
from tests.plugins.local import test_local_conformance as local_kit


class TestLocalLike(local_kit.TestLocalConformance):
    plugin = backends.LocalLike

    @classmethod
    def backend_plugins(cls) -> list[Any]:
        return [cls.plugin()]


class TestCancelStopsNothing(TestLocalLike):
    plugin = backends.CancelStopsNothing


class TestNoOutputShipping(TestLocalLike):
    plugin = backends.NoOutputShipping


class TestDoubleLaunch(TestLocalLike):
    plugin = backends.DoubleLaunch


class TestDeclinesMissing(TestLocalLike):
    capabilities = TestLocalLike.capabilities - {"missing"}
    not_claimed = {"missing": "this platform keeps every workload forever"}
