#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
# The listeners of spec/58 and spec/59 (issue 21: the receiving socket and
# the listen-overflow fate), bounded in time.
#
#   listeners.py overflow ADDR PORT M
#     a listener with backlog 1 that never accepts, then M connection
#     attempts to it, 0.2 s apart, each left to the kernel's SYN retries
#     for 3 s, then everything closed.  Prints "done".
#   listeners.py serve ADDR PORT N
#     a listener (backlog 16) that accepts N connections, echoes each one's
#     bytes until EOF and closes; prints "listening PID INODE" first, then
#     for each accepted connection "accepted PID INODE" (the accepted
#     socket's inode).  Exits after N, or after 60 s.
import os
import socket
import sys
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def overflow(addr, port, m):
    lst = socket.socket(family(addr))
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind((addr, port))
    lst.listen(1)
    clients = []
    for _ in range(m):
        c = socket.socket(family(addr))
        c.setblocking(False)
        try:
            c.connect((addr, port))
        except BlockingIOError:
            pass
        clients.append(c)
        time.sleep(0.2)
    time.sleep(3)
    for c in clients:
        c.close()
    lst.close()
    print("done", flush=True)


def serve(addr, port, n):
    lst = socket.socket(family(addr))
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind((addr, port))
    lst.listen(16)
    lst.settimeout(60)
    print("listening", os.getpid(), os.fstat(lst.fileno()).st_ino, flush=True)
    for _ in range(n):
        conn, _ = lst.accept()
        conn.settimeout(30)
        print("accepted", os.getpid(), os.fstat(conn.fileno()).st_ino, flush=True)
        while True:
            data = conn.recv(4096)
            if not data:
                break
            conn.sendall(data)
        conn.close()
    lst.close()


def main():
    cmd, addr, port, k = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if cmd == "overflow":
        overflow(addr, port, k)
    else:
        serve(addr, port, k)


main()
