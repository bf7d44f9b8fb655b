/* SPDX-License-Identifier: GPL-2.0-only */
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

/* Name tables.  Each is defined once, here, as an X-macro: the BPF program
 * takes the values, the C module takes the values and the names (and hands
 * the names to Lua: tcpinspect.core.flag_names, stat_names, probe_names).
 *
 * TCP flag bits, as in the TCP header's 8-bit flags byte, in bit order, which
 * is also the order tcpdump prints their letters in ("S.", "F.", ".U"):
 *	X(ID, bit, name, letter) */
#define TI_TCP_FLAGS(X)          \
	X(FIN, 0x01, "fin", 'F') \
	X(SYN, 0x02, "syn", 'S') \
	X(RST, 0x04, "rst", 'R') \
	X(PSH, 0x08, "psh", 'P') \
	X(ACK, 0x10, "ack", '.') \
	X(URG, 0x20, "urg", 'U') \
	X(ECE, 0x40, "ece", 'E') \
	X(CWR, 0x80, "cwr", 'W')

enum ti_tcp_flag {
#define TI_X(id, bit, name, letter) TI_##id = bit,
	TI_TCP_FLAGS(TI_X)
#undef TI_X
};

/* Which hook produced a record (struct ti_event.probe), and its name as
 * p.probe reports it.  The function probes' names are the probed functions;
 * "pcap" is a replayed capture (luaext/kernel_replay.c); "skb:kfree_skb" is
 * the drop hook: its records are drops (ti_event.reason, .location), the
 * others segments that arrived.
 *	X(ID, name) in value order, from 0 */
#define TI_PROBES(X)                    \
	X(NONE, "unknown")              \
	X(TCP_V4_RCV, "tcp_v4_rcv")     \
	X(TCP_V6_RCV, "tcp_v6_rcv")     \
	X(CGROUP, "cgroup_skb/ingress") \
	X(TC, "tc/ingress")             \
	X(PCAP, "pcap")                 \
	X(KFREE_SKB, "skb:kfree_skb")   \
	X(CONN, "conn")

enum ti_probe {
#define TI_X(id, name) TI_PROBE_##id,
	TI_PROBES(TI_X)
#undef TI_X
		TI_PROBE_COUNT,
};

/* One incoming TCP segment, or the drop of one (probe TI_PROBE_KFREE_SKB):
 * the ring-buffer record. */
struct ti_event {
	__u64 ts; /* CLOCK_MONOTONIC, ns */
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 seq;
	__u32 ack;
	__u32 ifindex;
	__u32 netns;  /* network namespace inode, 0 when the hook cannot tell */
	__u64 cgroup; /* the socket's cgroup v2 id, 0 when the hook cannot tell */
	__u32 cpu;
	__u16 sport;
	__u16 dport;
	__u16 window;  /* raw window field, not scaled */
	__u16 caplen;  /* bytes of the segment after this record (<= snaplen) */
	__u32 len;     /* TCP payload bytes */
	__u8 flags;    /* TI_FIN ... TI_CWR */
	__u8 family;   /* 4 or 6 */
	__u8 ttl;      /* IPv4 TTL or IPv6 hop limit */
	__u8 probe;    /* enum ti_probe */
	__u32 wirelen; /* the segment's length from the IP header on, as pcap's
			* len: the IPv4 total length, IPv6 40 + the payload
			* length; where that field is 0, the real length
			* (bpf/ti_parse.h: BIG TCP, RFC 2675 jumbograms).  The
			* IP header's own length (p.iplen) follows from it. */
	/* a drop (probe TI_PROBE_KFREE_SKB); 0 in every other record */
	__u32 reason;	/* the kernel's enum skb_drop_reason, as its BTF numbers it */
	__u32 location; /* the low 32 bits of the dropping code's address (the
			 * tracepoint's location): kernel text and modules lie
			 * within 2 GiB of _stext, which gives the rest
			 * (luaext/kernel_env.c, ti_kallsyms_name) */
	/* the receiving socket (open's sockets = true; doc/modes.md, "The
	 * receiving socket"): 0 in every field where the hook names none */
	__u64 sk_cookie; /* the socket's cookie, 0: none (or not generated) */
	__u64 sk_ino;	 /* its inode (ss's ino:) -- for a request socket or a
			  * connection not yet accepted, its listener's -- from
			  * which user space finds pid and comm; 0: none */
	__u32 uid;	 /* sk_uid, valid with TI_SK_UID */
	__u8 sk_state;	 /* the kernel's TCP state (TCP_ESTABLISHED = 1 ...; a
			  * request socket's NEW_SYN_RECV reported as SYN_RECV),
			  * 0: no socket */
	__u8 sk_flags;	 /* TI_SK_* */
	__u16 sk_pad;
};

/* struct ti_event.sk_flags */
#define TI_SK_UID 0x01	    /* uid is the socket's (a time-wait socket has none) */
#define TI_SK_LISTENER 0x02 /* sk_ino and uid are the listener's (a request socket) */
#define TI_SK_FULLQ 0x04    /* the listener's accept queue is full (BPF-side only) */

/* The largest length a record (len, wirelen) and filter.len carry. */
#define TI_LEN_MAX 0xffffffffLL

/* The record's layout is ABI between the BPF object and the C module, and
 * the ring reader and the pcap writer take the captured bytes from right
 * after it: 120 bytes, 8-aligned, the 32-bit lengths on 4-byte boundaries.
 * It was 88 bytes before drops: those were all packet fields (a drop
 * record has every one of them), and a drop needs its reason and where
 * the kernel dropped it, so one record kind with 8 more bytes costs every
 * record 8 bytes of ring (96 -> 104 with the ring's header) instead of a
 * second record layout that the reader, the dump and the replay would each
 * have to tell apart.  The receiving socket (sockets = true) adds 24 more
 * (120, 128 with the ring's header), for the same reason: one record for
 * every hook, its socket fields 0 where the hook names no socket. */
_Static_assert(sizeof(struct ti_event) == 120, "struct ti_event is 120 bytes");
_Static_assert(__builtin_offsetof(struct ti_event, sk_cookie) == 96, "ti_event.sk_cookie at 96");
_Static_assert(__builtin_offsetof(struct ti_event, caplen) == 74, "ti_event.caplen at 74");
_Static_assert(__builtin_offsetof(struct ti_event, len) == 76, "ti_event.len at 76");
_Static_assert(__builtin_offsetof(struct ti_event, wirelen) == 84, "ti_event.wirelen at 84");

/* The compact record: the first TI_EVENT_COMPACT bytes of struct ti_event
 * (every field up to wirelen), which is all a segment's record carries when
 * no bytes are captured (snaplen 0) and sockets are off: the drop fields
 * (reason, location) and the socket tail are 0 then.  ti_emit writes it
 * (96 bytes of ring with the kernel's header instead of 128).  The view
 * (luaext/packet.c, ti_packet_set_record) and the recorder's window
 * (ti_recorder_push) take it as a whole struct ti_event with its tail 0,
 * and the dump writes it from the view: one record definition, the tail
 * optional on the ring only.  Drop and conn-end records are always whole. */
#define TI_EVENT_COMPACT 88
_Static_assert(__builtin_offsetof(struct ti_event, reason) == TI_EVENT_COMPACT, "the compact record ends at reason");

/* Captured bytes and filter expressions.  A ring record is struct ti_event
 * followed by caplen bytes of the segment from its IP header on (open()'s
 * snaplen, at most TI_SNAPLEN_MAX).  A filter expression (a classic BPF
 * program from libpcap, run by bpf/ti_cbpf.h) reads at most the first
 * TI_CBPF_WINDOW bytes; luaext/expr.c refuses one that would read more.
 * TI_PKT_MAX is the per-CPU buffer the hooks copy those bytes into: a power
 * of two, so that an index masked with TI_PKT_MAX - 1 stays inside it. */
#define TI_PKT_MAX 4096
#define TI_SNAPLEN_MAX TI_PKT_MAX
#define TI_CBPF_WINDOW 256

/* The bytes a record of n bytes takes in the ring: the kernel's 8-byte
 * header, then the record rounded up to 8 (kernel/bpf/ringbuf.c).  The one
 * definition of a record's room: the BPF program counts pending bytes with
 * it, and user space sizes with ti_record_size. */
#define TI_RING_SPACE(n) (8 + (((__u64)(n) + 7) & ~(__u64)7))

/* The room the largest record of a session with this snaplen takes: the
 * event and snaplen bytes.  open() refuses a snaplen whose record takes
 * more than half the ring, and `wakeup` counts records of this size (a
 * segment shorter than snaplen makes a smaller record, so more of those
 * wait for the mark). */
static inline __u64 ti_record_size(__u32 snaplen)
{
	return TI_RING_SPACE(sizeof(struct ti_event) + snaplen);
}
#define TI_CBPF_MAX_INSNS 256 /* a power of two: pc is masked with it - 1 */

struct ti_cbpf_insn { /* struct sock_filter, struct bpf_insn of <pcap/bpf.h> */
	__u16 code;
	__u8 jt;
	__u8 jf;
	__u32 k;
};

struct ti_cbpf_prog {
	__u32 len; /* instructions; 0: no expression */
	__u32 pad;
	struct ti_cbpf_insn insns[TI_CBPF_MAX_INSNS];
};

/* Key of the "flows" map.  8-aligned, so that keys compare and hash as
 * words (bpf/ti_table.h); padding is always zero. */
struct ti_flow_key {
	__u8 family;
	__u8 pad[3];
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
} __attribute__((aligned(8)));

/* Value of the "flows" map. */
struct ti_flow_val {
	__u64 packets;
	__u64 bytes; /* payload bytes */
	__u64 first_ts;
	__u64 last_ts;
	__u32 flags_seen;
	__u32 pad;
};

/* Value of the "ports" map, a per-CPU array indexed by destination port. */
struct ti_port_val {
	__u64 packets;
	__u64 bytes;
};

/* Key and value of the "sources" map. */
struct ti_addr_key {
	__u8 family;
	__u8 pad[3];
	__u8 addr[16];
	__u32 pad2; /* to 24 bytes, 8-aligned like ti_flow_key */
} __attribute__((aligned(8)));

struct ti_source_val {
	__u64 packets;
	__u64 bytes;
	__u64 syns; /* SYN without ACK: connection attempts */
};

/* Key and value of the "drops" map (drops = true): a dropped segment's
 * reason (enum skb_drop_reason as the running kernel numbers it, whole: not
 * capped at the counters' slots), destination port and source address.
 * 24 bytes, 8-aligned, hashed as words like ti_addr_key. */
struct ti_drop_key {
	__u32 reason;
	__u8 family;
	__u8 pad;
	__u16 dport;
	__u8 saddr[16];
} __attribute__((aligned(8)));

struct ti_drop_val {
	__u64 packets;
	__u64 bytes; /* payload bytes */
	__u64 first_ts;
	__u64 last_ts;
};

/* Connections (open's conns = true; bpf/ti_conn.h has the step that fills
 * struct ti_conn and doc/reference.md the fields).  Key of the "conns"
 * hash map, shared by every CPU: the receiving network namespace, the
 * family and the 4-tuple of the incoming direction.  48 bytes, 8-aligned,
 * padding zero. */
struct ti_conn_key {
	__u32 netns;
	__u8 family;
	__u8 pad[3];
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u32 pad2;
} __attribute__((aligned(8)));

/* How a connection ended (struct ti_conn.end; the Lua end_reason):
 *	X(ID, name) in value order, from 0 */
#define TI_CONN_ENDS(X) \
	X(OPEN, "open") \
	X(FIN, "fin")   \
	X(RST, "rst")   \
	X(IDLE, "idle") \
	X(EVICTED, "evicted")

enum ti_conn_end {
#define TI_X(id, name) TI_CONN_END_##id,
	TI_CONN_ENDS(TI_X)
#undef TI_X
		TI_CONN_END_COUNT,
};

#define TI_CONN_HISTORY 16 /* room for history letters (8 kinds, each once) */

/* Value of the "conns" map: one connection's incoming direction, as
 * bpf/ti_conn.h's ti_conn_step keeps it.  It is also the body of a
 * conn-end record: a struct ti_event of probe TI_PROBE_CONN (the key's
 * addresses, ports, family and netns; ts: when it ended) whose caplen
 * bytes are this struct.  96 bytes. */
struct ti_conn {
	__u64 first_ts;	    /* the first segment's ts, ns */
	__u64 last_ts;	    /* the latest segment's */
	__u64 syn_ts;	    /* the latest SYN without ACK (0: none) */
	__u64 handshake_ns; /* SYN to the ACK that completed the handshake (0: none) */
	__u64 segments;
	__u64 bytes; /* payload */
	__u64 retransmits;
	__u64 zero_windows;
	__u32 next_seq; /* the highest sequence end seen (with TI_CONN_SEQ) */
	__u32 seen;	/* history letters present (1 << enum ti_conn_letter), TI_CONN_SEQ */
	__u8 history[TI_CONN_HISTORY];
	__u8 hlen;
	__u8 fin; /* a FIN came: the entry waits out the close (fin_timeout) */
	__u8 end; /* enum ti_conn_end: set when it ends */
	__u8 pad[5];
};
_Static_assert(sizeof(struct ti_conn) == 96, "struct ti_conn is 96 bytes");
_Static_assert(sizeof(struct ti_conn_key) == 48, "struct ti_conn_key is 48 bytes");

/* "len_hist": a per-CPU array of TI_HIST_SLOTS counters; slot 0 counts
 * empty payloads, slot k (k >= 1) payloads of 2^(k-1) .. 2^k - 1 bytes:
 * every 32-bit length has its slot (BIG TCP segments are larger than 64 KiB). */
#define TI_HIST_SLOTS 33

/* Per-CPU counters ("stats" map), X(ID, name) in index order.  The identities
 *   seen == filtered + matched
 *   matched == sampled_out + delivered + dropped   (events on)
 * hold exactly, since every segment takes exactly one branch.  errors counts
 * frames that carry TCP but are not one whole readable segment: headers that
 * could not be read, IP fragments, lengths larger than the frame (not in
 * seen; doc/modes.md, "Odd frames").
 * evicted_flows / evicted_sources / evicted_drops count entries of the full
 * "flows" / "sources" / "drops" tables replaced by a new key (bpf/ti_table.h): their counts are
 * no longer in the map.  busy counts segments not inspected because every
 * scratch slot of their CPU was in use (not in seen; bpf/tcpinspect.bpf.c,
 * struct ti_scratch).
 * conns = true (bpf/ti_conn.h): conns_opened counts entries the path put in
 * the "conns" table, conns_untracked segments of a connection the table
 * had no room for (never silent), conns_lost conn-end records the ring had
 * no room for; conns_expired and conns_evicted are user space's (the walk:
 * ended idle or after a FIN, or made room in a full table), added to the
 * kernel's when stats() reads them. */
#define TI_STATS(X)                           \
	X(SEEN, "seen")                       \
	X(FILTERED, "filtered")               \
	X(MATCHED, "matched")                 \
	X(SAMPLED_OUT, "sampled_out")         \
	X(DELIVERED, "delivered")             \
	X(DROPPED, "dropped")                 \
	X(ERRORS, "errors")                   \
	X(EVICTED_FLOWS, "evicted_flows")     \
	X(EVICTED_SOURCES, "evicted_sources") \
	X(EVICTED_DROPS, "evicted_drops")     \
	X(BUSY, "busy")                       \
	X(CONNS_OPENED, "conns_opened")       \
	X(CONNS_UNTRACKED, "conns_untracked") \
	X(CONNS_LOST, "conns_lost")           \
	X(CONNS_EXPIRED, "conns_expired")     \
	X(CONNS_EVICTED, "conns_evicted")

enum ti_stat {
#define TI_X(id, name) TI_STAT_##id,
	TI_STATS(TI_X)
#undef TI_X
		TI_STAT_MAX,
};

/* The counters of one CPU: the BPF program's .bss array ti_ctr, indexed by
 * CPU (bpf_get_smp_processor_id), one cache-line-aligned block each, so a
 * segment's counts are plain increments of this CPU's lines (no map
 * lookup, no atomics: each CPU writes only its own block, and hooks do not
 * nest on a CPU where a count is half done: an increment is one insn).
 * User space sums the blocks through the mmap-ed .bss (luaext/kernel.c,
 * live_stats).  A CPU numbered TI_CTR_CPUS or above counts in the per-CPU
 * map "stats" instead, which user space adds: exact on any machine. */
#define TI_CTR_CPUS 256
struct ti_cpu_ctr {
	__u64 stat[TI_STAT_MAX];
} __attribute__((aligned(64)));

/* Drop counters ("drop_ctr" map, a per-CPU array; bpf/ti_rules.h,
 * ti_drop_path): the first TI_DROP_REASON_SLOTS count drops per reason
 * (enum skb_drop_reason; a reason past the last slot, a subsystem's
 * (2^16 and up) say, in the last one), then the path's counters at
 * TI_DROP_REASON_SLOTS + i, X(ID, name) in index order, whose identities are
 *   seen == filtered + matched
 *   matched == delivered + lost   (events on; drops are never sampled)
 * and the reason slots sum to matched; with aggregates on, the "drops"
 * map's packets sum to matched too while evicted_drops (stats) is 0, and
 * its packets of a reason to that reason's slot.  errors counts drops of incoming
 * TCP segments whose headers could not be read (not in seen). */
#define TI_DROP_REASON_SLOTS 256
#define TI_DROP_STATS(X)          \
	X(SEEN, "seen")           \
	X(FILTERED, "filtered")   \
	X(MATCHED, "matched")     \
	X(DELIVERED, "delivered") \
	X(LOST, "lost")           \
	X(ERRORS, "errors")

enum ti_drop_stat {
#define TI_X(id, name) TI_DROP_##id,
	TI_DROP_STATS(TI_X)
#undef TI_X
		TI_DROP_STAT_MAX,
};
#define TI_DROP_CTR_SLOTS (TI_DROP_REASON_SLOTS + TI_DROP_STAT_MAX)

/* Load-time configuration: the program's `const volatile` rodata, set by user
 * space between open and load and frozen by the load, so the verifier knows
 * the values and prunes what they turn off (events = 0: no ring code;
 * aggregates = 0: no map updates; sample <= 1: no sampling counter). */

/* The aggregate maps a session opens (open's aggregates; luaext/kernel.h's
 * TI_MAPS in the same order): one bit each in ti_load_config.aggregates,
 * so the verifier prunes the update of every map that is off. */
enum ti_agg_bit {
	TI_AGG_FLOWS = 1 << 0,
	TI_AGG_PORTS = 1 << 1,
	TI_AGG_SOURCES = 1 << 2,
	TI_AGG_LEN_HIST = 1 << 3,
	TI_AGG_DROPS = 1 << 4,
};

struct ti_load_config {
	__u32 sample;	    /* deliver 1 in N (0 or 1: all) */
	__u32 events;	    /* 0: aggregates only, no ring traffic */
	__u32 aggregates;   /* TI_AGG_* bits: the maps updated (0: none) */
	__u32 wakeup_bytes; /* wake the reader once this much is pending */
	__u32 netns;	    /* reported in events by hooks that cannot read it */
	__u32 family;	    /* the open() family: 0 any, 4 or 6 */
	__u32 table_mask;   /* buckets - 1 of the flows, sources and drops tables */
	__u32 snaplen;	    /* bytes of each segment appended to its record */
	/* the scope (doc/modes.md, "Scoping to a container"): segments outside
	 * it are not seen at all; 0 turns each test off */
	__u32 scope_netns;     /* fentry/kprobe, cgroup (ti_cgroup_ingress_ns): only this netns inode */
	__u32 cgroup_level;    /* fentry/kprobe: cgroup_id's depth below the root */
	__u64 cgroup_id;       /* fentry/kprobe, drops: only sockets in this cgroup or below */
	__u32 drops;	       /* the drop hook is loaded (open's drops = true) */
	__u32 drop_netns;      /* drops: only in this netns inode (the scope's, any mode); 0: all */
	__u32 sockets;	       /* fill the receiving socket's fields (open's sockets = true) */
	__u32 conns;	       /* track connections (open's conns = true; bpf/ti_conn.h) */
	__u32 overflow_reason; /* drops: the value a listen overflow is reported with: the
				* kernel's SKB_DROP_REASON_TCP_LISTEN_OVERFLOW, else
				* TI_DROP_LISTEN_OVERFLOW */
	/* kernel addresses from /proc/kallsyms (luaext/kernel_env.c,
	 * ti_kallsyms_addr), constant for a boot; 0: unknown (kallsyms
	 * hides them, or the symbol is not there).  Carried here, not as
	 * typeless __ksym externs, because libbpf resolves those by parsing
	 * all of kallsyms with fscanf at every load (a quarter of an open's
	 * time in the emulated test guests).  User space reads the file once
	 * per process, stops at the last name it wants, and only where the
	 * program will use them. */
	__u64 page_offset_base; /* fentry/kprobe: &page_offset_base, the variable (ti_copy_frags) */
	__u64 vmemmap_base;	/* fentry/kprobe: &vmemmap_base, the variable */
	__u64 conn_request;	/* drops and sockets: tcp_conn_request, a SYN's overflow location */
	__u64 check_req;	/* drops and sockets: tcp_check_req, an ACK's overflow location */
};

/* A listen overflow's reason where the kernel's BTF has no
 * SKB_DROP_REASON_TCP_LISTEN_OVERFLOW (6.1): outside every kernel's enum so
 * far, below the drop counters' last ("OTHER") slot. */
#define TI_DROP_LISTEN_OVERFLOW 254

/* The filter: what set_filter changes.  Two copies live in the program's
 * .bss; user space writes the idle one and then flips ti_cfg_slot, so a
 * filter change never shows a half-written configuration to the kernel. */
enum ti_match {
	TI_M_SPORT = 1 << 0,
	TI_M_DPORT = 1 << 1,
	TI_M_SADDR = 1 << 2,
	TI_M_DADDR = 1 << 3,
	TI_M_FLAGS = 1 << 4,
	TI_M_LEN = 1 << 5,
	TI_M_IFINDEX = 1 << 6,
	TI_M_FAMILY = 1 << 7,
	TI_M_PORT = 1 << 8,	 /* sport or dport in port_bits */
	TI_M_HOST = 1 << 9,	 /* saddr or daddr in host_lpm */
	TI_M_UID = 1 << 10,	 /* the socket's uid (sockets = true) */
	TI_M_SK_STATE = 1 << 11, /* the socket's state in sk_states (sockets = true) */
};

struct ti_config {
	__u32 match;	 /* enum ti_match bits: which tests are on */
	__u32 flags_any; /* TI_M_FLAGS: segment has any of these */
	__u32 len_min;	 /* TI_M_LEN: payload bounds, inclusive */
	__u32 len_max;
	__u32 ifindex;	       /* TI_M_IFINDEX */
	__u32 family;	       /* TI_M_FAMILY: 4 or 6 */
	__u32 uid;	       /* TI_M_UID */
	__u32 sk_states;       /* TI_M_SK_STATE: bit s for state s (0: no socket) */
	__u8 sport_bits[8192]; /* one bit per port */
	__u8 dport_bits[8192];
	__u8 port_bits[8192];
	struct ti_cbpf_prog expr; /* the filter expression: must accept too */
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
