/* SPDX-License-Identifier: GPL-2.0-only */
/* ti_parse.h: from the bytes of a frame to struct ti_event, plain C compiled
 * for both targets: the BPF program (bpf/tcpinspect.bpf.c) parses every
 * segment with it, and user space (the pcap replay) parses the segments of a
 * capture with the very same code, so a replayed packet's fields are the
 * kernel's.
 *
 * The includer defines, before including it:
 *   TI_PARSE_CTX                   the type of the frame handle
 *                                  (BPF: struct __sk_buff *)
 *   TI_PARSE_LOAD(ctx, off, dst, n)  copy n bytes at offset off of the frame
 *                                  into dst; 0, or nonzero when they are not
 *                                  all there (BPF: bpf_skb_load_bytes)
 *   TI_PARSE_GSO(ctx)              nonzero when the frame may be a GSO
 *                                  segment, whose IPv4 total length 0 (or
 *                                  IPv6 payload length 0 with no Jumbo
 *                                  Payload option) means "as long as the
 *                                  frame" (BPF: the skb's gso_size; a
 *                                  capture: always, as tcpdump takes it)
 * ti_parse() alone needs neither.
 *
 * No kernel type, no library call: the headers are declared here, with the
 * kernel's field offsets.
 */
#ifndef TI_PARSE_H
#define TI_PARSE_H

#include "tcpinspect.h"

/* Inlined in BPF, where every helper is; an ordinary inline in user space. */
#define TI_INLINE static inline __attribute__((always_inline))

#define TI_IPPROTO_TCP 6
#define TI_IPPROTO_HOPOPTS 0
#define TI_IPPROTO_ROUTING 43
#define TI_IPPROTO_FRAGMENT 44
#define TI_IPPROTO_AH 51
#define TI_IPPROTO_DSTOPTS 60
#define TI_V6_EXT_MAX 6 /* IPv6 extension headers walked before TCP */

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define TI_NTOHS(x) __builtin_bswap16(x)
#define TI_NTOHL(x) __builtin_bswap32(x)
#else
#define TI_NTOHS(x) (x)
#define TI_NTOHL(x) (x)
#endif

/* The fields ti_parse reads, at the kernel's offsets and alignments (the
 * 4-byte alignment lets the address copies be word moves). */
struct ti_iphdr {
	__u8 ihl_version;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__sum16 check;
	__be32 saddr;
	__be32 daddr;
};

struct ti_ipv6hdr {
	__be32 version_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__be32 saddr[4];
	__be32 daddr[4];
};

struct ti_tcphdr {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
	__u8 doff_res; /* data offset in the high nibble */
	__u8 flags;
	__be16 window;
	__sum16 check;
	__be16 urg_ptr;
};

/* What the frame walk reads and its state (ip: 4-aligned, as ti_parse
 * reads it through struct ti_iphdr / ti_ipv6hdr).  In BPF it lives in the per-CPU
 * scratch map, not on the stack (bpf/ti_rules.h, "Stack slots").  An IPv4
 * walk loads only 20 bytes of ip, and nothing reads past them then: ip
 * need not be cleared before a walk (the BPF hooks do not). */
struct ti_walk {
	__u8 ip[40] __attribute__((aligned(4))); /* the IP header bytes */
	struct ti_tcphdr th;			 /* the TCP header */
	__u8 ext[8];				 /* an IPv6 extension header's first bytes */
	__u32 nh, l4;				 /* the IPv6 header walk: next header, its offset */
};

/* Fill e from an IP header (ip points at 40 bytes, enough for either family)
 * and a TCP header.  l4_off is the TCP header's offset from the IP header.
 * frame: the bytes the frame really has from its IP header on, the length
 * the hook knows (the skb's, a capture's original length), used where the
 * header's own length field is 0, as the kernel and tcpdump use it:
 *   IPv4 total length 0: a BIG TCP (GSO) segment longer than 64 KiB
 *   (Linux's iph_totlen(); tcpdump takes the captured frame's length);
 *   IPv6 payload length 0: a jumbogram (RFC 2675), its length in the
 *   Hop-by-Hop header's Jumbo Payload option (ti_frame_segment reads it;
 *   at tcp_v6_rcv the kernel has already trimmed the skb to it), or BIG
 *   TCP on a kernel that no longer inserts that header.
 * e->wirelen is the segment's length from the IP header on (32 bits).
 * Returns 0, or -1 for a segment too short to be real. */
TI_INLINE int ti_parse(struct ti_event *e, const __u8 *ip, __u32 l4_off, const struct ti_tcphdr *th, __u64 frame)
{
	__u64 wirelen, hdrlen = (th->doff_res >> 4) * 4;

	if ((ip[0] >> 4) == 4) {
		const struct ti_iphdr *h = (const void *)ip;

		e->family = 4;
		__builtin_memcpy(e->saddr, &h->saddr, 4);
		__builtin_memcpy(e->daddr, &h->daddr, 4);
		e->ttl = h->ttl;
		wirelen = TI_NTOHS(h->tot_len);
	} else {
		const struct ti_ipv6hdr *h = (const void *)ip;

		e->family = 6;
		__builtin_memcpy(e->saddr, h->saddr, 16);
		__builtin_memcpy(e->daddr, h->daddr, 16);
		e->ttl = h->hop_limit;
		wirelen = TI_NTOHS(h->payload_len);
		if (wirelen)
			wirelen += 40;
	}
	if (!wirelen)
		wirelen = frame;
	if (hdrlen < 20 || wirelen > 0xffffffffULL || wirelen < l4_off + hdrlen)
		return -1;
	e->wirelen = wirelen;
	e->len = wirelen - l4_off - hdrlen;
	e->sport = TI_NTOHS(th->source);
	e->dport = TI_NTOHS(th->dest);
	e->seq = TI_NTOHL(th->seq);
	e->ack = TI_NTOHL(th->ack_seq);
	e->window = TI_NTOHS(th->window);
	e->flags = th->flags;
	return 0;
}

#ifdef TI_PARSE_LOAD
/* The headers of a frame the kernel has not validated yet (tc runs before
 * ip_rcv; cgroup_skb after it, where the same checks all pass; a pcap file
 * holds what a capture saw).  off: where the IP header starts; len: the
 * frame's length; v4: the frame says IPv4 (else IPv6).  Returns 1 for one
 * whole TCP segment, parsed into e; 0 for a frame that is not TCP (counted
 * nowhere: not ours); -1 for a frame that carries TCP but is not one whole
 * readable segment, counted in `errors` (doc/modes.md, "Odd frames"):
 *   an IPv4 fragment, first or not (MF set or a fragment offset): tc sees
 *   fragments, never the reassembled segment; an IPv6 Fragment header
 *   before TCP; an IPv4 header with IHL < 5 or version != 4; a total length
 *   (IPv6: 40 + payload length) larger than the frame or too small for the
 *   IP and TCP headers, or 0 where it does not mean BIG TCP (IPv4, a GSO
 *   frame: the frame's length) or a jumbogram (IPv6, a Hop-by-Hop header
 *   whose first option is a Jumbo Payload: its length); a TCP data offset
 *   < 5 or past the total length; more than TI_V6_EXT_MAX IPv6 extension
 *   headers.
 * A total length smaller than the frame is Ethernet padding: the segment
 * ends at the total length.  IPv6 hop-by-hop, routing, destination-options
 * and AH headers are walked; the segment after them counts as usual. */
TI_INLINE __s64 ti_frame_segment(TI_PARSE_CTX ctx, __u64 off, __u64 len, int v4, struct ti_event *e, struct ti_walk *x)
{
	/* 64-bit locals and no byte buffer on the stack (bpf/ti_rules.h,
	 * "Stack slots") */
	__u64 l4_off, iplen, avail;

	if (len <= off)
		return 0;
	avail = len - off; /* IP bytes in the frame */
	if (v4) {
		if (TI_PARSE_LOAD(ctx, off, x->ip, 20) || x->ip[9] != TI_IPPROTO_TCP)
			return 0;
		l4_off = (x->ip[0] & 0xf) * 4;
		if ((x->ip[0] >> 4) != 4 || l4_off < 20)
			return -1;
		if ((x->ip[6] & 0x3f) || x->ip[7]) /* MF, or a fragment offset */
			return -1;
		iplen = ((__u32)x->ip[2] << 8) | x->ip[3];
		if (!iplen && TI_PARSE_GSO(ctx))
			iplen = avail; /* BIG TCP: the segment is the frame */
	} else {
		if (TI_PARSE_LOAD(ctx, off, x->ip, 40))
			return 0;
		x->nh = x->ip[6];
		if ((x->ip[0] >> 4) != 6)
			return x->nh == TI_IPPROTO_TCP ? -1 : 0;
		x->l4 = 40;
		/* The extension headers, TI_V6_EXT_MAX of them at most, written out:
		 * clang does not unroll this walk (it has exits), and its counter
		 * or state cannot be on the stack (bpf/ti_rules.h, "Stack
		 * slots"): the state lives in x. */
#define TI_V6_EXT_STEP()                                                                                         \
	if (x->nh != TI_IPPROTO_TCP) {                                                                           \
		if (x->nh != TI_IPPROTO_HOPOPTS && x->nh != TI_IPPROTO_ROUTING && x->nh != TI_IPPROTO_DSTOPTS && \
		    x->nh != TI_IPPROTO_AH && x->nh != TI_IPPROTO_FRAGMENT)                                      \
			return 0; /* UDP, ICMPv6, no next header, ...: not TCP */                                \
		if (TI_PARSE_LOAD(ctx, off + x->l4, x->ext, 2))                                                  \
			return -1;                                                                               \
		if (x->nh == TI_IPPROTO_FRAGMENT) /* a fragment: of TCP? */                                      \
			return x->ext[0] == TI_IPPROTO_TCP ? -1 : 0;                                             \
		x->l4 += x->nh == TI_IPPROTO_AH ? ((__u32)x->ext[1] + 2) * 4 : ((__u32)x->ext[1] + 1) * 8;       \
		x->nh = x->ext[0];                                                                               \
	}
		TI_V6_EXT_STEP()
		TI_V6_EXT_STEP()
		TI_V6_EXT_STEP()
		TI_V6_EXT_STEP()
		TI_V6_EXT_STEP()
		TI_V6_EXT_STEP()
#undef TI_V6_EXT_STEP
		if (x->nh != TI_IPPROTO_TCP)
			return -1; /* too many extension headers to tell */
		l4_off = x->l4;
		iplen = ((__u32)x->ip[4] << 8) | x->ip[5];
		if (iplen)
			iplen += 40;
		else if (x->ip[6] == TI_IPPROTO_HOPOPTS) {
			/* a jumbogram: the Jumbo Payload option, first in the
			 * Hop-by-Hop header (RFC 2675; Linux's hop_jumbo_hdr) */
			if (TI_PARSE_LOAD(ctx, off + 40, x->ext, 8) || x->ext[2] != 0xc2 || x->ext[3] != 4)
				return -1;
			iplen = 40 + (((__u64)x->ext[4] << 24) | ((__u32)x->ext[5] << 16) | ((__u32)x->ext[6] << 8) |
				      x->ext[7]);
		} else if (TI_PARSE_GSO(ctx))
			iplen = avail; /* BIG TCP without the Hop-by-Hop header */
	}
	if (iplen > avail || l4_off + sizeof(x->th) > iplen)
		return -1;
	if (TI_PARSE_LOAD(ctx, off + l4_off, &x->th, sizeof(x->th)))
		return -1;
	return ti_parse(e, x->ip, l4_off, &x->th, iplen) ? -1 : 1;
}
#endif /* TI_PARSE_LOAD */

#endif /* TI_PARSE_H */
