"""Shared test setup: no network beyond loopback unless a test is marked ``network``."""

from __future__ import annotations

import ipaddress
import socket
import sys

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded(real):
    def connect(self, address):
        if not _is_local(address):
            raise OSError(f"network access blocked in tests (address {address!r}); mark the test 'network'")
        return real(self, address)

    return connect


@pytest.fixture(autouse=True)
def _offline(request, monkeypatch):
    if request.node.get_closest_marker("network"):
        yield
        return
    monkeypatch.setattr(socket.socket, "connect", _guarded(_real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded(_real_connect_ex))
    yield


@pytest.fixture
def settings():
    from alphasignal.config import Settings

    return Settings()


def pytest_sessionfinish(session, exitstatus):
    # llama-cpp-python opens /dev/null twice at import and never closes it (a ResourceWarning at exit)
    utils = sys.modules.get("llama_cpp._utils")
    if utils is not None:
        utils.outnull_file.close()
        utils.errnull_file.close()
