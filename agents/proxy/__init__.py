"""The neural proxy: a fast, differentiable stand-in for render + analyze (`Proxy.load(dir)`)."""

from agents.proxy.model import Proxy, ProxyError

__all__ = ["Proxy", "ProxyError"]
