#!/bin/sh
# certbot's deploy hook (installed by provision, roles/tls.py): after a renewal, nginx reads the new
# certificate on a reload, after `nginx -t`; it is never restarted.
nginx -t -q && systemctl reload nginx
