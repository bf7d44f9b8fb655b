#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""bulk_sender.py ADDR PORT BYTES [RCVBUF]: one TCP connection to ADDR:PORT (a server
of its own, on a thread), BYTES sent with TCP_NODELAY in one write, read to
the end by the server.  On lo, GSO makes segments as large as the MTU (and,
with BIG TCP, larger).  Used by spec/40-kernel_lengths_spec.lua."""
import socket
import sys
import threading

addr, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
srv = socket.socket(fam)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
# RCVBUF (optional): a receive buffer of its own from the start.  The
# sender sends at most half the largest window it has seen, and 6.1 opens
# with a 64 KiB window on lo (half of tcp_rmem's 128 KiB): a slow reader (a
# TCG guest) kept every segment at 32 KiB without it.  It also turns off
# autotuning, whose larger windows BIG TCP needs (the kernel caps it at
# rmem_max), so the BIG TCP test goes without.
if len(sys.argv) > 4:
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, int(sys.argv[4]))
srv.bind((addr, port))
srv.listen(1)
# every wait is bounded: the server's accept and reads time out, and its
# thread is a daemon, so a failed send ends the process instead of leaving
# it waiting for a client that is gone
srv.settimeout(60)
got = [0]


def serve():
    conn, _ = srv.accept()
    conn.settimeout(60)
    while True:
        b = conn.recv(1 << 20)
        if not b:
            break
        got[0] += len(b)
    conn.close()


t = threading.Thread(target=serve, daemon=True)
t.start()
c = socket.socket(fam)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
c.settimeout(60)
c.connect((addr, port))
c.sendall(b"x" * total)
c.shutdown(socket.SHUT_WR)
t.join(60)
c.close()
srv.close()
if got[0] != total:
    sys.exit("received %d of %d bytes" % (got[0], total))
print("ok")
