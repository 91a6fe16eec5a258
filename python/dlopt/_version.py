"""dlopt's version: the one place it is written.

pyproject.toml reads it (scikit-build-core's regex metadata provider) and so does CMakeLists.txt (for
DLOPT_VERSION in dlopt/version.hpp, the compiled module and the CMake package), so the Python package,
the wheel, ``dlopt._core.__version__`` and ``find_package(dlopt)`` always agree. Bump it here only.
"""

__version__ = "0.1.0"
