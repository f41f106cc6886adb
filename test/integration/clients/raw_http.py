#!/usr/bin/env python3
"""Raw HTTP(S) clients that misbehave on purpose, for the resource-limit tests.

  raw_http.py idle PORT CA N        open N TCP connections and hold them, then one normal
                                    GET /v1/health over TLS: prints its status line and seconds
  raw_http.py slow PORT CA          send a request header one byte every 0.3 s: prints how
                                    many seconds until the server closed the connection
  raw_http.py body PORT CA BYTES    send a PUT header announcing BYTES of body, no token and
                                    no body: prints the status line that comes back (and when)
"""
import socket
import ssl
import sys
import time


def tls(port, ca):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    return ctx.wrap_socket(s)


def status_line(s):
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n")[0].decode(errors="replace")


def main():
    mode, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if mode == "idle":
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(int(sys.argv[4]))]
        t = time.time()
        c = tls(port, ca)
        c.sendall(b"GET /v1/health HTTP/1.1\r\nHost: shardd\r\nConnection: close\r\n\r\n")
        print(status_line(c), round(time.time() - t, 3))
        for h in held:
            h.close()
    elif mode == "slow":
        c = tls(port, ca)
        c.settimeout(0.3)
        req = b"GET /v1/health HTTP/1.1\r\nHost: shardd\r\nX-Pad: " + b"a" * 200
        t = time.time()
        for b in req:
            try:
                c.sendall(bytes([b]))
                if c.recv(1) == b"":
                    break
            except socket.timeout:
                continue  # nothing from the server yet: go on sending
            except OSError:
                break
            if time.time() - t > 30:
                break
        print(round(time.time() - t, 3))
    elif mode == "body":
        c = tls(port, ca)
        n = int(sys.argv[4])
        t = time.time()
        c.sendall(b"PUT /v1/indexes/big HTTP/1.1\r\nHost: shardd\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(n).encode() + b"\r\n\r\n")
        print(status_line(c), round(time.time() - t, 3))


if __name__ == "__main__":
    main()
