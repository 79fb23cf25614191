"""Base: the apt cache is fresh enough, and the packages every host needs are there."""

from provisioner.resources import Packages


def resources(v):
    yield Packages(("python3", "python3-venv", *v.base_packages),
                   cache_valid_time=v.apt_cache_valid_time, lock_timeout=v.apt_lock_timeout)


def handlers(v):
    return []
