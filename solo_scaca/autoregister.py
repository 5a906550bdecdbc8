"""When ``import solo_scaca`` registers the methods: at once if solo-learn is already imported,
else as soon as it is. The package itself never imports the host, so that the plain-data
commands (``solo-scaca-toy-data``, ``solo-scaca-clutter-data``) start without it.

Registering imports the method modules, which import the host; done in the middle of an
import of one of them it would find it half-done. So a one-off import hook watches the loading
of the host (``solo``, ``solo.methods``) and of this package's modules, and registers after the
first of them to finish while the host's registry exists and none of them is half-imported;
then it removes itself.
"""

import importlib.abc
import sys
from types import ModuleType
from typing import Optional

HOST = "solo"
HOST_REGISTRY = "solo.methods"


def _watched(name: str) -> bool:
    return name in (HOST, HOST_REGISTRY) or name.startswith("solo_scaca.")


def _half_imported(module: ModuleType) -> bool:
    # what importlib marks on a module's spec while it runs the module's code
    return getattr(getattr(module, "__spec__", None), "_initializing", False)


def host_ready(finished: Optional[ModuleType] = None) -> bool:
    """Whether the host's registry is imported and no watched module (but ``finished``, whose
    import is ending) is half-imported."""
    return HOST_REGISTRY in sys.modules and not any(
        _watched(name) and module is not finished and _half_imported(module)
        for name, module in list(sys.modules.items()))


def _register() -> None:
    from solo_scaca.registration import register

    register()


class RegisterWithHost(importlib.abc.MetaPathFinder):
    """The import hook: finds nothing itself; it wraps the loading of the watched modules."""

    def find_spec(self, name, path=None, target=None):
        if not _watched(name):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            execute = spec.loader.exec_module

            def exec_module(module: ModuleType) -> None:
                execute(module)
                if self in sys.meta_path and host_ready(module):
                    sys.meta_path.remove(self)
                    _register()

            spec.loader.exec_module = exec_module  # this spec's own loader object
        return spec


def register_with_host() -> None:
    """Registers the methods now if the host is imported, else when it is."""
    if host_ready():
        _register()
    elif not any(isinstance(f, RegisterWithHost) for f in sys.meta_path):
        sys.meta_path.insert(0, RegisterWithHost())
