"""The drop-in's one C module (the near-cache's hit, nanad_client/_hit.c). Optional: without a C
compiler the package installs with its Python twin (_near.PyHitIndex). The rest of the
package's metadata is in pyproject.toml."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("nanad_client._hit", ["nanad_client/_hit.c"], optional=True,
                             extra_compile_args=["-O2", "-Wall", "-Wno-missing-field-initializers"])])
