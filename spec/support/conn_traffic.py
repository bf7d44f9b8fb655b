#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Connections with known payloads and known ends, for spec/64 and spec/65.

  conn_traffic.py server HOST PORT
      accept connections until killed; each: read until EOF (then close:
      FIN) or a reset (then close), with a thread per connection
  conn_traffic.py client HOST PORT SPEC...
      one connection per SPEC, in order, each from its own port:
        SIZE:fin      send SIZE bytes, shut down the sending side, read
                      until the server's FIN, close (every segment of the
                      close reaches a full socket: no TIME_WAIT receives)
        SIZE:rst      send SIZE bytes, wait until the server has read them
                      all (its ACK), close with SO_LINGER 0: a RST
        SIZE:idle:S   send SIZE bytes, hold the connection S seconds
                      without a segment, then close with a RST
      prints "SPORT SIZE END" per connection as it is opened (flushed)
"""
import socket
import struct
import sys
import threading
import time


def serve(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    srv = socket.socket(fam, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(128)
    print("listening", flush=True)

    def one(c):
        try:
            while c.recv(65536):
                pass
        except OSError:
            pass
        c.close()

    while True:
        c, _ = srv.accept()
        threading.Thread(target=one, args=(c,), daemon=True).start()


def unacked(s):
    # tcpi_unacked from struct tcp_info (TCP_INFO): 0 once every byte sent
    # was acknowledged
    info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return struct.unpack_from("I", info, 24)[0]


def client(host, port, specs):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for spec in specs:
        parts = spec.split(":")
        size, end = int(parts[0]), parts[1]
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect((host, port))
        print(s.getsockname()[1], size, end, flush=True)
        s.sendall(b"x" * size)
        if end == "fin":
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
            s.close()
            continue
        deadline = time.time() + 30
        while unacked(s) and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        if end == "idle":
            time.sleep(float(parts[2]))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        time.sleep(0.05)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        client(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
