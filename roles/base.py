"""Base: the apt cache is fresh enough, and the packages every host needs are there.

Every role declares the packages it needs with `packages()`; the stack installs all of a host's in ONE
apt transaction (Stack.declare: one dependency resolution, one dpkg run, one round of triggers).
"""

from provisioner.resources import Packages


def packages(v, *names: str) -> Packages:
    """Packages with the host's apt settings: how every role declares the packages it needs."""
    return Packages(names, cache_valid_time=v.apt_cache_valid_time, lock_timeout=v.apt_lock_timeout,
                    update_timeout=v.apt_update_timeout)


def resources(v):
    yield packages(v, "python3", "python3-venv", *v.base_packages)


def handlers(v):
    return []
