#!/bin/sh
# certbot's deploy hook (installed by provision, roles/tls.py): after a renewal, nginx reads the new
# certificate on a reload, after `nginx -t`; it is never restarted.
# Stapling follows the new certificate (write_stapling_conf: roles/tls-stapling.sh, above in the hook).
write_stapling_conf && nginx -t -q && systemctl reload nginx
