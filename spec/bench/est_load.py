#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""spec/bench/est_load.py: established-flow load on loopback for make bench.

    est_load.py PORT SECS [CONNS]

A sink process accepts CONNS connections on 127.0.0.1:PORT and reads
everything; this process sends 64-byte writes (TCP_NODELAY: one segment
each) round-robin over the connections for SECS seconds, then closes them.
Prints "sent=N" (writes).  Bounded in time; loopback only.
"""
import os
import select
import socket
import sys
import time

port, secs = int(sys.argv[1]), float(sys.argv[2])
conns = int(sys.argv[3]) if len(sys.argv) > 3 else 16

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(conns)
pid = os.fork()
if pid == 0:  # the sink
    peers = [srv.accept()[0] for _ in range(conns)]
    deadline = time.monotonic() + secs + 10
    while peers and time.monotonic() < deadline:
        ready, _, _ = select.select(peers, [], [], 1)
        for p in ready:
            if not p.recv(1 << 16):
                peers.remove(p)
                p.close()
    os._exit(0)
srv.close()
socks = []
for _ in range(conns):
    c = socket.create_connection(("127.0.0.1", port))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    socks.append(c)
msg = b"x" * 64
sent = 0
end = time.monotonic() + secs
while time.monotonic() < end:
    for c in socks:
        c.send(msg)
    sent += conns
for c in socks:
    c.close()
os.waitpid(pid, 0)
print("sent=%d" % sent)
