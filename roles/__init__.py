"""The server, described: the roles a deploy applies, in this order."""

from . import app, base, nginx, uwsgi

ROLES = (base, app, uwsgi, nginx)
