#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
# The listeners of spec/58 and spec/59 (issue 21: the receiving socket and
# the listen-overflow fate), bounded in time.
#
#   listeners.py overflow ADDR PORT M
#     a listener with backlog 1 that never accepts, then M connection
#     attempts to it, 0.2 s apart, each left to the kernel's SYN retries
#     for 3 s, then everything closed.  Prints "done".
#   listeners.py serve ADDR PORT N NAME
#     a process named NAME (its comm) listening (backlog 16), which prints
#     "LISTEN <its ss -tlnpeH line>", then accepts N connections: for each,
#     "ESTAB <client port> <its ss -tnpeH line>", then one byte "!" to the
#     client, then echoes until EOF and closes.  Stays 30 s after the N-th.
#   listeners.py hold ADDR PORT 0 NAME
#     a process named NAME listening (backlog 4) that never accepts: prints
#     "LISTEN <its ss -tlnpeH line>", stays 30 s.
#   listeners.py send ADDR PORT K
#     K connections that each send "hello" and close, unanswered; "done".
#   listeners.py acks ADDR PORT K
#     K bare ACKs (no connection: the listener resets and drops each) to
#     ADDR:PORT (IPv4) from a raw socket, from source ports 40000...
#   listeners.py client ADDR PORT N
#     N conversations with a serve: connect, wait for "!", send "hello",
#     read it back, 0.2 s later half-close, read EOF, close; prints
#     "conn <port>" each, "done" at the end.
import ctypes
import os
import socket
import struct
import subprocess
import sys
import time

from tcp_flags_sender import csum  # the TCP checksum, next to this file


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


def ss(args, filt):
    out = subprocess.run(["ss", "-H"] + args + [filt], capture_output=True, text=True, timeout=10).stdout
    return " ".join(out.split())


def serve(addr, port, n, name):
    ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME
    lst = socket.socket(family(addr))
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind((addr, port))
    lst.listen(16)
    lst.settimeout(60)
    print("LISTEN", ss(["-tlnpe"], "sport = :%d" % port), flush=True)
    for _ in range(n):
        conn, peer = lst.accept()
        conn.settimeout(30)
        print("ESTAB", peer[1], ss(["-tnpe"], "sport = :%d and dport = :%d" % (port, peer[1])), flush=True)
        conn.sendall(b"!")
        while True:
            data = conn.recv(4096)
            if not data:
                break
            conn.sendall(data)
        conn.close()
    time.sleep(30)  # stays, listening, until the spec ends it
    lst.close()


def hold(addr, port, name):
    ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME
    lst = socket.socket(family(addr))
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind((addr, port))
    lst.listen(4)
    print("LISTEN", ss(["-tlnpe"], "sport = :%d" % port), flush=True)
    time.sleep(30)
    lst.close()


def send(addr, port, k):
    for _ in range(k):
        c = socket.socket(family(addr))
        c.settimeout(10)
        c.connect((addr, port))
        c.sendall(b"hello")
        time.sleep(0.2)
        c.close()
    print("done", flush=True)


def client(addr, port, n):
    for _ in range(n):
        c = socket.socket(family(addr))
        c.settimeout(30)
        c.connect((addr, port))
        assert c.recv(1) == b"!"
        c.sendall(b"hello")
        got = b""
        while len(got) < 5:
            got += c.recv(5 - len(got))
        time.sleep(0.2)  # the session reads the records while the sockets live
        c.shutdown(socket.SHUT_WR)
        assert c.recv(1) == b""
        print("conn", c.getsockname()[1], flush=True)
        c.close()
    print("done", flush=True)


def acks(addr, port, k):
    r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    r.bind((addr, 0))  # the source the checksum covers
    src = dst = socket.inet_aton(addr)
    for i in range(k):
        th = struct.pack("!HHIIBBHHH", 40000 + i, port, 1000 + i, 2000, 5 << 4, 0x10, 65535, 0, 0)
        pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(th))
        th = th[:16] + struct.pack("!H", csum(pseudo + th)) + th[18:]
        r.sendto(th, (addr, 0))
    r.close()
    print("done", flush=True)


def main():
    cmd, addr, port, k = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if cmd == "overflow":
        overflow(addr, port, k)
    elif cmd == "hold":
        hold(addr, port, sys.argv[5])
    elif cmd == "send":
        send(addr, port, k)
    elif cmd == "acks":
        acks(addr, port, k)
    elif cmd == "serve":
        serve(addr, port, k, sys.argv[5])
    else:
        client(addr, port, k)


main()
