"""Which optional libraries are installed (NanaSQLite's ``nanasqlite.compat``).

``HAS_VALIDKIT``: validkit-py (``validator=`` schemas, ``ValidkitHook``); ``HAS_ORJSON``: orjson
(NanaSQLite's faster JSON; the drop-in's values are encoded by nanad, so it only reports it);
``HAS_RE2``: google-re2 (linear-time regexes for hook key patterns).
"""

from __future__ import annotations

import types
from typing import Any, Optional

# As NanaSQLite's compat: each flag says whether the library imports (not merely whether it is
# on the path), and validkit_validate is validkit's, or a stub that says it is missing.
try:
    from validkit import validate as validkit_validate  # type: ignore[import-not-found]

    HAS_VALIDKIT = True
except ImportError:
    HAS_VALIDKIT = False

    def validkit_validate(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
        """Stands in for validkit's ``validate`` when validkit-py is not installed."""
        raise ImportError("validkit-py is not installed. Install it with: pip install validkit-py")


try:
    import orjson  # type: ignore[import-not-found]  # noqa: F401

    HAS_ORJSON = True
except ImportError:
    HAS_ORJSON = False

# google-re2, when installed: hook key patterns are compiled with it (linear time).
re2_module: Optional[types.ModuleType]
try:
    import re2 as re2_module  # type: ignore[import-not-found,no-redef]
except ImportError:
    re2_module = None
HAS_RE2 = re2_module is not None

