"""Base: the apt cache is fresh enough, and the packages every host needs are there.

Every package the stack's roles declare for this host is installed here, in ONE apt transaction
(one dependency resolution, one dpkg run, one round of triggers) instead of one per role; the
roles' own Packages then find theirs installed when they apply (resources/apt.py skips them).
"""

import sys

from provisioner.resources import Packages


def _stack_packages(v) -> list[str]:
    """The packages the other roles of the default stack declare for this host, in role order."""
    from . import STACK  # here, not at the top: roles/__init__.py imports this module

    names: list[str] = []
    for role in STACK.roles:
        if role is sys.modules[__name__]:
            continue
        for resource in role.resources(v):
            if isinstance(resource, Packages):
                names += [n for n in resource.names if n not in names]
    return names


def packages(v, *names: str) -> Packages:
    """Packages with the host's apt settings: how every role declares the packages it needs."""
    return Packages(names, cache_valid_time=v.apt_cache_valid_time, lock_timeout=v.apt_lock_timeout,
                    update_timeout=v.apt_update_timeout)


def resources(v):
    names = ["python3", "python3-venv", *v.base_packages]
    yield packages(v, *names, *(n for n in _stack_packages(v) if n not in names))


def handlers(v):
    return []
