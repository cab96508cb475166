"""``ad.config``: the engine's global switches, in one place.

Example:
    >>> import autodiff as ad
    >>> ad.config.compile = False      # run lowered programs without mx.compile
    >>> ad.config.typecheck = True     # typecheck every transform's output (tests do)
"""

from __future__ import annotations

import contextlib


class Config:
    """Global switches.

    Attributes:
        compile: "auto" (``mx.compile`` a program from its second run; ``jit`` compiles at
            once), True (always) or False (never; the test suite uses this to avoid MLX's
            per-graph kernel compilation on the CPU).
        cache_size: entries kept by each LRU cache (jit and the structural cache).
        typecheck: typecheck every transform's output before and after optimisation.
        fuse: rewrite recognised subgraphs of lowered programs into MLX's fused kernels
            (``mx.fast.*``, ``mx.addmm``, ``mx.softmax``, ``mx.logsumexp``; see
            ``autodiff/transforms/fuse``): True (the rewrites that pay off on the default
            device when a program is lowered), False (none), or a collection of rule names
            (``"sdpa"``, ``"layer_norm"``, ``"rms_norm"``, ``"rope"``, ``"addmm"``,
            ``"softmax"``, ``"log_softmax"``, ``"logsumexp"``, ``"cross_entropy"``).
            Changing it empties the program caches, so every program is lowered again under
            the new setting.
    """

    __slots__ = ("compile", "cache_size", "typecheck", "_fuse", "_watchers")

    def __init__(self):
        self.compile: bool | str = "auto"
        self.cache_size: int = 1024
        self.typecheck: bool = False
        self._fuse: bool | frozenset = True
        self._watchers: list = []

    @property
    def fuse(self) -> bool | frozenset:
        return self._fuse

    @fuse.setter
    def fuse(self, value):
        value = value if isinstance(value, bool) else frozenset(value)
        if value != self._fuse:
            self._fuse = value
            for fn in self._watchers:
                fn()

    def on_lowering_change(self, fn) -> None:
        """Call ``fn()`` whenever a setting that changes lowered programs (``fuse``) changes:
        the caches of lowered programs register here to empty themselves."""
        self._watchers.append(fn)

    @contextlib.contextmanager
    def override(self, **settings):
        """Change settings inside a ``with`` block, restoring them after it.

        Example:
            >>> with ad.config.override(compile=False):
            ...     ad.grad(f)(x)
        """
        old = {k: getattr(self, k) for k in settings}
        for k, v in settings.items():
            setattr(self, k, v)
        try:
            yield self
        finally:
            for k, v in old.items():
                setattr(self, k, v)

    def __repr__(self):
        names = [k.lstrip("_") for k in self.__slots__ if k != "_watchers"]
        return "Config(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in names) + ")"


config = Config()
