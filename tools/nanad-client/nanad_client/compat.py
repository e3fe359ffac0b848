"""Which optional libraries are installed (NanaSQLite's ``nanasqlite.compat``).

``HAS_VALIDKIT``: validkit-py (``validator=`` schemas, ``ValidkitHook``); ``HAS_ORJSON``: orjson
(NanaSQLite's faster JSON; the drop-in's values are encoded by nanad, so it only reports it);
``HAS_RE2``: google-re2 (linear-time regexes for hook key patterns).
"""

from __future__ import annotations

import importlib.util
import types
from typing import Any, Optional


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


HAS_VALIDKIT = _installed("validkit")
HAS_ORJSON = _installed("orjson")

# google-re2, when installed: hook key patterns are compiled with it (linear time).
re2_module: Optional[types.ModuleType]
try:
    import re2 as re2_module  # type: ignore[import-not-found,no-redef]
except ImportError:
    re2_module = None
HAS_RE2 = re2_module is not None


def validkit_validate(*args: Any, **kwargs: Any) -> Any:
    """validkit's ``validate``, or ImportError when validkit-py is not installed."""
    try:
        from validkit import validate  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ImportError("validkit-py is not installed. Install it with: pip install validkit-py") from exc
    return validate(*args, **kwargs)
