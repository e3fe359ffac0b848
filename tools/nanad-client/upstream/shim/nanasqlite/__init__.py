"""``nanasqlite`` for NanaSQLite's own test suite, run through the drop-in (upstream.sh).

Everything comes from ``nanad_client``; ``nanasqlite.<module>`` is ``nanad_client.<module>``
where the drop-in has one (a test importing a module it lacks fails, and is counted so). The
one adaptation: the tests name files by absolute paths under pytest's temporary folder, which
upstream.sh makes nanad's data folder; paths inside it are passed on relative to it, as nanad
takes them.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.util
import os
import sys

import nanad_client
from nanad_client import *  # noqa: F401,F403
from nanad_client import __all__ as _drop_in_all

_DATA = os.path.realpath(os.environ.get("NANAD_UPSTREAM_DATA", "/nonexistent"))


def _inside_data(path):
    """``path`` relative to nanad's data folder when it lies inside it, else unchanged."""
    if not isinstance(path, (str, os.PathLike)):
        return path
    text = os.fspath(path)
    if not isinstance(text, str) or text == ":memory:" or text.startswith("file:"):
        return path
    resolved = os.path.realpath(os.path.abspath(text))
    if resolved.startswith(_DATA + os.sep):
        return os.path.relpath(resolved, _DATA)
    return path


def _wrap(cls):
    # functools.wraps keeps the drop-in's signatures, annotations and docstrings visible to
    # the tests that inspect them (inspect.signature follows __wrapped__).
    class Wrapped(cls):
        @functools.wraps(cls.__init__)
        def __init__(self, db_path=None, *args, **kwargs):
            if "db_path" in kwargs:
                kwargs["db_path"] = _inside_data(kwargs["db_path"])
                super().__init__(*args, **kwargs)
            else:
                super().__init__(_inside_data(db_path), *args, **kwargs)

    for name in ("backup", "restore", "abackup", "arestore"):
        original = getattr(cls, name, None)
        if original is None:
            continue

        @functools.wraps(original)
        def method(self, path=None, *args, _original=original, **kwargs):
            for key in ("dest_path", "src_path", "target_path", "source_path"):
                if key in kwargs:
                    kwargs[key] = _inside_data(kwargs[key])
            if path is None:
                return _original(self, *args, **kwargs)
            return _original(self, _inside_data(path), *args, **kwargs)

        setattr(Wrapped, name, method)
    Wrapped.__doc__ = cls.__doc__
    Wrapped.__name__ = cls.__name__
    Wrapped.__qualname__ = cls.__qualname__
    Wrapped.__module__ = "nanasqlite"
    return Wrapped


NanaSQLite = _wrap(nanad_client.NanaSQLite)
AsyncNanaSQLite = _wrap(nanad_client.AsyncNanaSQLite)
# Tests import the classes from nanasqlite.core and .async_core too (the drop-in's modules, by
# the alias below): those names get the same path adaptation.
import nanad_client.async_core  # noqa: E402
import nanad_client.core  # noqa: E402

nanad_client.core.NanaSQLite = NanaSQLite
nanad_client.async_core.AsyncNanaSQLite = AsyncNanaSQLite
__all__ = list(_drop_in_all)
__version__ = "1.6.2"


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``nanasqlite.X`` → ``nanad_client.X`` (the same module object)."""

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith("nanasqlite."):
            return None
        target_name = "nanad_client." + fullname.split(".", 1)[1]
        if importlib.util.find_spec(target_name) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module("nanad_client." + spec.name.split(".", 1)[1])
        sys.modules[spec.name] = module
        return module

    def exec_module(self, module):
        # First import: create_module already ran the drop-in's module. importlib.reload() of
        # the alias (a test that reloads nanasqlite.compat) calls only this: run it again.
        if getattr(module, "_nanad_alias_loaded", False):
            importlib.util.spec_from_file_location(module.__name__, module.__file__).loader.exec_module(module)
        module._nanad_alias_loaded = True


sys.meta_path.insert(0, _Alias())
