"""The app, checked on the controller where that is cheap and certain: the Python files that make up
app_module (the module and its packages' __init__.py, where they are in app_source) must compile, or
uWSGI would fail to load the app only after the release went out.

Certain only on a Python at least as new as the hosts' (Debian 13: 3.13): an older controller may reject
syntax the host's Python takes, so there a syntax error is a warning, not an error. A missing callable
or module is not checked: the module may come from app_requirements, the callable from code that runs.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

from provisioner.errors import UserError

NEWEST_HOST_PYTHON = (3, 13)    # Debian 13's python3


def check_app(source: Path, module: str, where: str) -> list[str]:
    """Compile the files of `module` found in `source`; a UserError (or, on an older Python, the warning
    returned) for the first syntax error."""
    parts = module.split(".")
    if parts[0] in sys.stdlib_module_names and source.joinpath(parts[0]).is_dir():
        # `site` never loads (Python imports its own at start-up); others only until something imports them
        return [f"app_module {module} of {where}: its package {parts[0]} has the name of a module of Python's "
                "standard library, which Python may import instead (site always is); rename the package"]
    files = [source.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts) + 1)]
    files.append(source.joinpath(*parts[:-1], f"{parts[-1]}.py"))
    for file in (f for f in files if f.is_file()):
        error = _syntax_error(str(file), file.stat().st_mtime_ns)
        if error:
            cause = f"app_module {module} of {where} would not load: {error}"
            if sys.version_info < NEWEST_HOST_PYTHON:
                return [f"{cause} (on this Python {sys.version_info.major}.{sys.version_info.minor}; the "
                        "host's may accept it)"]
            raise UserError(cause, "fix that line of the app; uWSGI would refuse to start it")
    return []


@functools.lru_cache(maxsize=256)
def _syntax_error(path: str, mtime_ns: int) -> str:
    """`path:line: message` of the file's syntax error, or ""; read once per version of the file."""
    try:
        compile(Path(path).read_bytes(), path, "exec", dont_inherit=True)
    except SyntaxError as error:
        return f"{path}:{error.lineno}: {error.msg}"
    except (OSError, ValueError) as error:
        return f"{path}: {error}"
    return ""
