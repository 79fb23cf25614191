# The "restart metrics" handler's proof: each exporter answers on the host's private address with a
# metric that says it reads its source (nginx's status page; uWSGI's stats socket), within 20 s (the
# exporters start in well under a second; Debian 12's nginx exporter waits 5 s between its tries of
# a status page not yet loaded). Parameters: NGINX_URL, UWSGI_URLS (one an app, space separated).
python3 - "$NGINX_URL" "$UWSGI_URLS" <<'PROVISION_PY'
import re, sys, time, urllib.request
pairs = [(sys.argv[1], "^nginx_connections_active ")] + [(url, "^uwsgi_up 1$") for url in sys.argv[2].split()]
deadline = time.monotonic() + 20
for url, wanted in pairs:
    while True:
        try:
            text = urllib.request.urlopen(url, timeout=3).read().decode()
            if re.search(wanted, text, re.M):
                break
            last = f"no line {wanted!r} in its metrics"
        except OSError as error:
            last = str(error)
        if time.monotonic() > deadline:
            sys.exit(f"{url}: {last}")
        time.sleep(0.5)
PROVISION_PY
