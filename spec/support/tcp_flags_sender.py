#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Send TCP segments with every combination of the 8 flag bits, over IPv6 or
IPv4, through a raw socket (the kernel adds the IP header; we build the TCP
header with its checksum).  hping3 covers IPv4 only; this covers IPv6 the
same way for the filter corpus (spec/support/make_corpus.sh).

    tcp_flags_sender.py SRC DST DPORT [COUNT_PER_COMBO]

Each segment varies the payload length (0-39 bytes) and the TCP options
(none, MSS, MSS+SACK-permitted+timestamps+window scale) with the combination,
so the corpus has option-bearing headers of several lengths.
"""
import socket
import struct
import sys


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def options(i):
    kind = i % 3
    if kind == 0:
        return b""
    if kind == 1:
        return struct.pack("!BBH", 2, 4, 1460)  # MSS
    # MSS, SACK permitted, timestamps, NOP, window scale: 20 bytes
    return (struct.pack("!BBH", 2, 4, 1400) + b"\x04\x02" +
            struct.pack("!BBII", 8, 10, 1000 + i, 0) + b"\x01" + b"\x03\x03\x07")


def segment(src, dst, family, sport, dport, flags, i):
    opts = options(i)
    payload = bytes((i * 7 + k) & 0xFF for k in range(i % 40))
    doff = (20 + len(opts)) // 4
    hdr = struct.pack("!HHIIBBHHH", sport, dport, 100000 + i * 1000, 5000 + i,
                      doff << 4, flags, 1024 + i, 0, 7 if flags & 0x20 else 0)
    tcp = hdr + opts + payload
    if family == socket.AF_INET6:
        pseudo = (socket.inet_pton(family, src) + socket.inet_pton(family, dst) +
                  struct.pack("!IxxxB", len(tcp), 6))
    else:
        pseudo = (socket.inet_pton(family, src) + socket.inet_pton(family, dst) +
                  struct.pack("!xBH", 6, len(tcp)))
    c = csum(pseudo + tcp)
    return tcp[:16] + struct.pack("!H", c) + tcp[18:]


def main():
    src, dst, dport = sys.argv[1], sys.argv[2], int(sys.argv[3])
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    family = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_TCP)
    s.bind((src, 0))
    for flags in range(256):
        for n in range(count):
            seg = segment(src, dst, family, 20000 + flags, dport, flags, flags + n)
            s.sendto(seg, (dst, 0))
    s.close()


if __name__ == "__main__":
    main()
