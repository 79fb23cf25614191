"""GET PATH straight from the uWSGI socket (no nginx), retrying while the app loads.

argv: PATH SOCKET TRIES. Exit 0 on a 200.
"""
import socket, struct, sys, time
path, sock_path, tries = sys.argv[1], sys.argv[2], int(sys.argv[3])
def kv(k, v):
    k, v = k.encode(), v.encode()
    return struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
env = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "REQUEST_URI": path, "QUERY_STRING": "",
       "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
       "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "localhost"}
body = b"".join(kv(k, v) for k, v in env.items())
for attempt in range(tries):
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(sock_path)
        s.sendall(struct.pack("<BHB", 0, len(body), 0) + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        status = data.split(b"\r\n", 1)[0].decode(errors="replace")
        if status.split()[1:2] == ["200"]:
            print(status); sys.exit(0)
        detail = status or "empty answer"
    except OSError as e:
        detail = str(e)
    if attempt < tries - 1:
        time.sleep(0.5)
print(f"uWSGI at {sock_path} did not answer {path} with 200: {detail}"); sys.exit(1)
