"""User functions that reach the workers of any cluster by value.

``distributed`` pickles task graphs with plain ``pickle``, i.e. functions by module and
name, so a science function whose module exists only on the client (a script next to the
notebook, ``__main__``) would fail to load on the workers. :func:`ship_by_value` wraps it so
that it travels as code (``cloudpickle`` with its module registered by value); the engine
wraps every user function it is given.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

__all__ = ["func_id", "ship_by_value"]


def func_id(func: str | Callable) -> str:
    """A function's name in a run's identity: the statistic, or ``module:qualname``."""
    if isinstance(func, str):
        return func
    func = getattr(func, "func", func) if isinstance(func, _ByValue) else func
    module = getattr(func, "__module__", None) or type(func).__module__
    name = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{module}:{name}"


@functools.lru_cache(maxsize=32)
def _restore(blob: bytes) -> Callable:
    """The function shipped by :class:`_ByValue` (once per process and function)."""
    import cloudpickle

    return cloudpickle.loads(blob)


class _ByValue:
    """A user function that travels to workers by value, its module not needed there.

    ``distributed`` pickles task graphs with plain ``pickle`` (functions by reference,
    i.e. by module and name), so a function whose module exists only on the client would
    fail to load on the workers. This wrapper pickles itself as the function's code
    (``cloudpickle`` with the function's module registered by value).
    """

    def __init__(self, func: Callable):
        self.func = func
        self.__name__ = getattr(func, "__name__", None) or type(func).__name__
        self.__qualname__ = getattr(func, "__qualname__", None) or self.__name__
        self.__module__ = getattr(func, "__module__", None) or type(func).__module__
        self.__doc__ = getattr(func, "__doc__", None)
        if hasattr(func, "units"):  # the units it declares for its outputs (map_frames)
            self.units = func.units
        self._blob: bytes | None = None

    def __call__(self, *args, **kwargs):
        return self.func(*args, **kwargs)

    def _dumps(self) -> bytes:
        if self._blob is None:
            import cloudpickle

            module = sys.modules.get(self.__module__ or "")
            if module is not None and self.__module__ not in ("__main__", "builtins"):
                cloudpickle.register_pickle_by_value(module)
            self._blob = cloudpickle.dumps(self.func)
        return self._blob

    def __reduce__(self):
        return _restore, (self._dumps(),)

    def __dask_tokenize__(self):
        import hashlib

        # the code and closure, not just the name: a redefined function gets new keys
        return ("intake-helio-science", hashlib.sha1(self._dumps()).hexdigest())

    def __repr__(self) -> str:
        return f"<science function {func_id(self.func)} {id(self.func):#x}>"


def ship_by_value(func: Callable) -> Callable:
    """``func`` wrapped to reach the workers of any cluster by value.

    The module holding ``func`` is registered with ``cloudpickle`` to be pickled by value
    (its functions and classes travel as code; modules it imports still need to be
    installed on the workers), so a module that exists only on the client, e.g. a script
    next to the notebook, works on a ``LocalCluster`` of processes or a gateway cluster.
    Calls, ``__name__`` and ``__module__`` are those of ``func``.
    """
    if isinstance(func, _ByValue) or not callable(func):
        return func
    if (getattr(func, "__module__", None) or "").split(".")[0] == "intake_helio":
        return func  # installed wherever the package runs
    return _ByValue(func)
