#!/usr/bin/env python3
"""Raw peer-protocol clients that misbehave on purpose, for the peer resource-limit tests.
They speak as a member, with its certificate (docs/peer-protocol.md: a 24-byte header, then
the payload; hello first).

  raw_peer.py idle PORT CA CERT KEY NODE        say hello, then nothing: prints the seconds
                                                until the server closed the connection
  raw_peer.py noread PORT CA CERT KEY NODE N    say hello, send N map_get requests and never
                                                read a reply: prints "closed" if the server
                                                closed the connection, else "open"
"""
import socket
import ssl
import struct
import sys
import time

HELLO, HELLO_OK, MAP_GET = 1, 2, 16


def frame(ftype, request_id, payload=b""):
    return struct.pack(">IBBHQQ", 24 + len(payload), ftype, 0, 0, request_id, 0) + payload


def field(b):
    return struct.pack(">I", len(b)) + b


def read_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def connect(port, ca, cert, key, node):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    ctx.load_cert_chain(cert, key)
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30))
    s.sendall(frame(HELLO, 1, struct.pack(">I", 1) + field(b"shardd") + field(node.encode())))
    length, ftype = struct.unpack(">IB", read_exact(s, 5))
    read_exact(s, length - 5)
    if ftype != HELLO_OK:
        sys.exit("hello refused: frame type %d" % ftype)
    return s


def main():
    mode, port, ca, cert, key, node = sys.argv[1], int(sys.argv[2]), *sys.argv[3:7]
    s = connect(port, ca, cert, key, node)
    if mode == "idle":
        t = time.time()
        try:
            while s.recv(4096):
                pass
        except (OSError, EOFError):
            pass
        print("%.2f" % (time.time() - t))
    elif mode == "noread":
        n = int(sys.argv[7])
        batch = b"".join(frame(MAP_GET, 2 + i) for i in range(n))
        try:
            s.sendall(batch)
        except OSError:
            print("closed")
            return
        # Long past the server's write deadline, drain what it sent: a server that gave up on
        # this connection ends it (EOF); one that did not keeps it open with nothing more to say.
        time.sleep(6)
        s.settimeout(3)
        try:
            while s.recv(1 << 20):
                pass
            print("closed")
        except socket.timeout:
            print("open")
        except (OSError, EOFError):
            print("closed")
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
