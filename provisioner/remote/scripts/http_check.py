"""GET http://127.0.0.1:PORT/PATH with a Host header, retrying while a restarted uWSGI loads its app.

argv: URL HOST TRIES. Prints "STATUS BODY"; exit 0 on a 2xx/3xx answer.
"""
import sys, time, urllib.request, urllib.error
url, host, tries = sys.argv[1], sys.argv[2], int(sys.argv[3])
for attempt in range(tries):
    try:
        req = urllib.request.Request(url, headers={"Host": host})
        with urllib.request.urlopen(req, timeout=10) as r:
            print(r.status, r.read(200).decode(errors="replace").strip()); sys.exit(0)
    except urllib.error.HTTPError as e:
        status, detail = e.code, e.read(200).decode(errors="replace").strip()
    except OSError as e:
        status, detail = 0, str(e)
    if attempt < tries - 1:
        time.sleep(0.5)
print(status, detail); sys.exit(1)
