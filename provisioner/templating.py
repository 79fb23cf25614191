r"""Render the files the tool installs on a host (nginx site, uWSGI ini, systemd unit, env file).

    render("nginx/site.conf.j2", {"v": settings, "paths": Layout.of(settings)})

One cached jinja2 Environment per template root: StrictUndefined (a missing name is an error, never
an empty string), keep_trailing_newline, no autoescape (these are config files, not HTML). Compiled
templates are kept across runs in <cache>/jinja2/<jinja2 version>/ (compiling them was most of a no-op
deploy's planning time, docs/performance.md): jinja2 recompiles a template whose source changed, and
a cache that cannot be written is only slower, never an error.

Every jinja error becomes a `UserError` that names the template file, the line and the problem:

    templates/nginx/site.conf.j2:14: undefined variable 'v.foo'
    templates/uwsgi/app.ini.j2:3: unexpected '}'

Helpers available in every template (besides jinja's own):
- filter `ini_bool`: True/False -> "true"/"false" (uWSGI accepts both forms for every flag).
- filter `reveal`: the plain text of a secret value (anything with `reveal()`, `get_secret_value()`
  or a `.value`/`.secret` attribute), or str() of anything else.
- filter `systemd_env_value`: a value quoted for a systemd EnvironmentFile (double quotes; `\\ " $ \``
  escaped); refuses newlines, carriage returns and NUL with a UserError.
- filter `systemd_env_name`: checks a variable name is `[A-Za-z_][A-Za-z0-9_]*` (UserError otherwise).
- global `fail(cause, fix="")`: raise a UserError from inside a template (defence in depth).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import sys
from pathlib import Path
from types import TracebackType

import jinja2

from provisioner import PROJECT_ROOT, TEMPLATES_DIR, default_cache_dir
from provisioner.errors import UserError

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def reveal(value: object) -> str:
    """The plain text of a (possibly secret) value. Only for files written to the host."""
    for method in ("reveal", "get_secret_value"):
        fn = getattr(value, method, None)
        if callable(fn):
            return str(fn())
    for attr in ("value", "secret"):
        if hasattr(value, attr) and not callable(getattr(value, attr)):
            return str(getattr(value, attr))
    return str(value)


def ini_bool(value: object) -> str:
    if not isinstance(value, bool):
        raise UserError(f"expected true or false, got {value!r}", "set the setting to true or false")
    return "true" if value else "false"


def systemd_env_name(name: object) -> str:
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        raise UserError(
            f"app_env: {name!r} is not a valid environment variable name",
            "use letters, digits and '_' only, not starting with a digit (e.g. API_TOKEN)",
        )
    return name


def systemd_env_value(value: object, name: str = "") -> str:
    r"""Quote a value for a systemd EnvironmentFile.

    systemd (env-file.c) reads `KEY="..."` with backslash escapes for `\\ " $ \`` only and no
    variable expansion; a newline cannot be written safely, so it is refused."""
    text = reveal(value)
    if any(c in text for c in "\n\r\0"):
        where = f"app_env.{name}" if name else "app_env value"
        raise UserError(
            f"{where} contains a newline, carriage return or NUL, which a systemd EnvironmentFile "
            "cannot hold",
            "put the value on one line (e.g. base64-encode multi-line secrets)",
        )
    escaped = "".join("\\" + c if c in '\\"$`' else c for c in text)
    return f'"{escaped}"'


def _fail(cause: str, fix: str = "") -> None:
    raise UserError(cause, fix)


class _BytecodeCache(jinja2.FileSystemBytecodeCache):
    """Jinja's file cache, best effort: a read-only or full cache directory costs a compile, no more."""

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass


# How templates are read: compiled code depends on these, so they name the cache directory too.
_SYNTAX = {"keep_trailing_newline": True, "trim_blocks": True, "lstrip_blocks": True, "autoescape": False}


def _bytecode_cache() -> _BytecodeCache | None:
    """The compiled-template cache of this jinja2 version and syntax (the code depends on both)."""
    syntax = hashlib.sha256(repr(sorted(_SYNTAX.items())).encode()).hexdigest()[:12]
    directory = default_cache_dir() / "jinja2" / f"{jinja2.__version__}-{syntax}"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return None
    return _BytecodeCache(str(directory))


@functools.lru_cache(maxsize=8)
def _environment(root: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        bytecode_cache=_bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        **_SYNTAX,
    )
    env.filters["ini_bool"] = ini_bool
    env.filters["reveal"] = reveal
    env.filters["systemd_env_value"] = systemd_env_value
    env.filters["systemd_env_name"] = systemd_env_name
    env.globals["fail"] = _fail
    return env


def _display(path: Path | str) -> str:
    """templates/x.j2 for the project's own templates, the full path for others."""
    path = Path(os.path.abspath(path))
    try:
        return str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _template_line(tb: TracebackType | None, root: Path) -> tuple[str | None, int | None]:
    """Innermost traceback frame that belongs to a template file under root (jinja rewrites
    tracebacks so that frames point at template source lines)."""
    found: tuple[str | None, int | None] = (None, None)
    prefixes = (os.path.normpath(root) + os.sep, os.path.abspath(root) + os.sep)
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.startswith(prefixes):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _undefined_expression(message: str, source_line: str) -> str:
    """Turn jinja's message into the expression the template wrote, e.g. 'v.foo'."""
    m = re.search(r"has no attribute '([^']+)'", message) or re.search(
        r"'([^']+)' is undefined", message
    )
    if not m:
        return message
    name = m.group(1)
    dotted = re.search(
        r"([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)(?:\." + re.escape(name)
        + r"|\[['\"]" + re.escape(name) + r"['\"]\])(?![A-Za-z0-9_])",
        source_line,
    )
    if dotted:
        return f"{dotted.group(1)}.{name}"
    return name


def _syntax_error(e: jinja2.TemplateSyntaxError, default: Path) -> UserError:
    return UserError(f"{_display(e.filename or default)}:{e.lineno}: {e.message}",
                     "fix the template syntax at that line")


def render(template_name: str, context: dict, root: Path | str | None = None) -> str:
    """Render templates/<template_name> with context; jinja errors become UserError."""
    root_path = Path(root) if root is not None else TEMPLATES_DIR
    env = _environment(str(root_path))
    try:
        template = env.get_template(template_name)
    except jinja2.TemplateNotFound as e:
        raise UserError(
            f"template not found: {_display(root_path / str(e.name or template_name))}",
            f"check the template name; templates live under {_display(root_path)}/",
        ) from None
    except jinja2.TemplateSyntaxError as e:
        raise _syntax_error(e, root_path / template_name) from None
    try:
        return template.render(**context)
    except jinja2.UndefinedError as e:
        filename, lineno = _template_line(sys.exc_info()[2], root_path)
        line_text = ""
        if filename and lineno:
            try:
                line_text = Path(filename).read_text().splitlines()[lineno - 1]
            except (OSError, IndexError):
                pass
        expr = _undefined_expression(str(e.message or e), line_text)
        shown = _display(filename or root_path / template_name)
        raise UserError(
            f"{shown}:{lineno or '?'}: undefined variable '{expr}'",
            "pass it in the render context, or fix the name (settings are listed in "
            "docs/settings.md)",
        ) from None
    except jinja2.TemplateSyntaxError as e:  # e.g. in an {% include %}d template
        raise _syntax_error(e, root_path / template_name) from None
    except jinja2.TemplateError as e:
        filename, lineno = _template_line(sys.exc_info()[2], root_path)
        shown = _display(filename or root_path / template_name)
        raise UserError(f"{shown}:{lineno or '?'}: {e}", "fix the template at that line") from None
