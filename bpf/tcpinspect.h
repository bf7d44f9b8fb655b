/* tcpinspect.h: the one definition of every record that crosses between the
 * BPF programs (bpf/tcpinspect.bpf.c) and user space (luaext/).
 *
 * Fixed-width fields only, no pointers, explicit padding: the same bytes mean
 * the same thing on both sides.  Ports are in host byte order; addresses are
 * in network byte order, IPv4 in the first 4 bytes of the 16-byte arrays.
 */
#ifndef TCPINSPECT_H
#define TCPINSPECT_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* TCP flag bits, as in the TCP header's 8-bit flags byte. */
#define TI_FIN 0x01
#define TI_SYN 0x02
#define TI_RST 0x04
#define TI_PSH 0x08
#define TI_ACK 0x10
#define TI_URG 0x20
#define TI_ECE 0x40
#define TI_CWR 0x80

/* Which hook produced a record (struct ti_event.probe). */
enum ti_probe {
	TI_PROBE_NONE = 0,
	TI_PROBE_TCP_V4_RCV = 1,
	TI_PROBE_TCP_V6_RCV = 2,
	TI_PROBE_CGROUP = 3,
	TI_PROBE_TC = 4,
};

/* One incoming TCP segment: the ring-buffer record. */
struct ti_event {
	__u64 ts; /* CLOCK_MONOTONIC, ns */
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 seq;
	__u32 ack;
	__u32 ifindex;
	__u32 netns; /* network namespace inode, 0 when the hook cannot tell */
	__u32 cpu;
	__u16 sport;
	__u16 dport;
	__u16 window; /* raw window field, not scaled */
	__u16 len;    /* TCP payload bytes */
	__u16 iplen;  /* IPv4 total length, IPv6 payload length */
	__u8 flags;   /* TI_FIN ... TI_CWR */
	__u8 family;  /* 4 or 6 */
	__u8 ttl;     /* IPv4 TTL or IPv6 hop limit */
	__u8 probe;   /* enum ti_probe */
	__u16 pad;
};

/* Key of the "flows" map. */
struct ti_flow_key {
	__u8 family;
	__u8 pad[3];
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
};

/* Value of the "flows" map. */
struct ti_flow_val {
	__u64 packets;
	__u64 bytes; /* payload bytes */
	__u64 first_ts;
	__u64 last_ts;
	__u32 flags_seen;
	__u32 pad;
};

/* Value of the "ports" map; its key is the destination port (__u16). */
struct ti_port_val {
	__u64 packets;
	__u64 bytes;
};

/* Key and value of the "sources" map. */
struct ti_addr_key {
	__u8 family;
	__u8 pad[3];
	__u8 addr[16];
};

struct ti_source_val {
	__u64 packets;
	__u64 bytes;
	__u64 syns; /* SYN without ACK: connection attempts */
};

/* "len_hist": a per-CPU array of TI_HIST_SLOTS counters; slot 0 counts
 * empty payloads, slot k (k >= 1) payloads of 2^(k-1) .. 2^k - 1 bytes. */
#define TI_HIST_SLOTS 18

/* Per-CPU counters ("stats" map).  The identities
 *   seen == filtered + matched
 *   matched == sampled_out + delivered + dropped   (events on)
 * hold exactly, since every segment takes exactly one branch. */
enum ti_stat {
	TI_STAT_SEEN = 0,
	TI_STAT_FILTERED,
	TI_STAT_MATCHED,
	TI_STAT_SAMPLED_OUT,
	TI_STAT_DELIVERED,
	TI_STAT_DROPPED,
	TI_STAT_ERRORS, /* TCP segments whose headers could not be read */
	TI_STAT_MAX,
};

/* Filter and output configuration.  Two copies live in the program's .bss;
 * user space writes the idle one and then flips ti_cfg_slot, so a filter
 * change never shows a half-written configuration to the kernel. */
enum ti_match {
	TI_M_SPORT = 1 << 0,
	TI_M_DPORT = 1 << 1,
	TI_M_SADDR = 1 << 2,
	TI_M_DADDR = 1 << 3,
	TI_M_FLAGS = 1 << 4,
	TI_M_LEN = 1 << 5,
	TI_M_IFINDEX = 1 << 6,
	TI_M_FAMILY = 1 << 7,
	TI_M_PORT = 1 << 8, /* sport or dport in port_bits */
	TI_M_HOST = 1 << 9, /* saddr or daddr in host_lpm */
};

struct ti_config {
	__u32 match;        /* enum ti_match bits: which tests are on */
	__u32 flags_any;    /* TI_M_FLAGS: segment has any of these */
	__u32 len_min;      /* TI_M_LEN: payload bounds, inclusive */
	__u32 len_max;
	__u32 ifindex;      /* TI_M_IFINDEX */
	__u32 family;       /* TI_M_FAMILY: 4 or 6 */
	__u32 sample;       /* deliver 1 in N (0 or 1: all) */
	__u32 events;       /* 0: aggregates only, no ring traffic */
	__u32 aggregates;   /* 0: skip the flows/ports/sources/len_hist maps */
	__u32 wakeup_bytes; /* wake the reader once this much is pending */
	__u32 netns;        /* reported in events by hooks that cannot read it */
	__u32 pad;
	__u8 sport_bits[8192]; /* one bit per port */
	__u8 dport_bits[8192];
	__u8 port_bits[8192];
};

/* Key of the "saddr_lpm"/"daddr_lpm"/"host_lpm" tries: the configuration slot and the
 * family come first, so one trie holds both slots and both families. */
struct ti_lpm_key {
	__u32 prefixlen; /* 16 + address prefix length */
	__u8 slot;
	__u8 family;
	__u8 addr[16];
};

#endif /* TCPINSPECT_H */
