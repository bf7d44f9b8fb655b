/* SPDX-License-Identifier: GPL-2.0-only */
/* ti_conn.h: one connection's incoming direction, updated segment by
 * segment -- plain C compiled for both targets, as ti_parse.h and
 * ti_rules.h are: the BPF program (through ti_rules.h's ti_conn_track, on
 * the "conns" hash map) and the pcap replay (luaext/kernel_replay.c, on
 * its table in memory) call the same ti_conn_step, so a capture gives the
 * conn log of the live session that saw its traffic.
 *
 * A connection here is what one receiver sees: the segments that arrive
 * in one network namespace for one 4-tuple (struct ti_conn_key).  Between
 * two namespaces of one host both halves are incoming somewhere, and each
 * is a connection of its own (keys with the tuple reversed and the other
 * namespace).
 *
 * What the step keeps (struct ti_conn, bpf/tcpinspect.h):
 *   first_ts, last_ts   the first and the latest segment
 *   segments, bytes     segments and payload bytes
 *   history             one letter per kind of event, in the order each
 *                       first happened (Zeek's conn.log keeps each once,
 *                       too): TI_CONN_LETTERS below
 *   handshake_ns        from the latest SYN without ACK to the first ACK
 *                       without SYN after it: the handshake as the server
 *                       sees it, what tshark calls tcp.analysis.initial_rtt
 *                       (its ts_mru_syn to the ACK); 0 when this side got no
 *                       SYN (the client's half) or no ACK came
 *   retransmits         segments that occupy sequence space (payload, SYN
 *                       or FIN) starting below the highest end seen so far
 *                       (seq + payload + SYN + FIN): retransmitted and
 *                       out-of-order segments alike, as tshark flags them
 *                       (retransmission, fast_retransmission,
 *                       spurious_retransmission, out_of_order all start
 *                       below its nextseq); a keep-alive (at most one byte
 *                       at the highest end - 1, no SYN or FIN) is not one,
 *                       as tshark's keep_alive is not
 *   zero_windows        segments advertising a zero window, without SYN,
 *                       FIN or RST (tshark's zero_window)
 *   fin, end            a FIN came (the close is under way); RST ends the
 *                       connection at once (ti_conn_step returns 1)
 *
 * Races (BPF): segments of one connection can arrive on two CPUs at once
 * (lo, veth).  segments, bytes, retransmits and zero_windows are atomic
 * adds; the rest (last_ts, next_seq, history, handshake) is written plainly:
 * two segments of one flow handled at the same instant can each see the
 * other's state before or after, so a retransmission can go uncounted (or
 * an out-of-order pair counted) then, and history letters can come in
 * either order.  doc/modes.md, "Connections".
 */
#ifndef TI_CONN_H
#define TI_CONN_H

#include "tcpinspect.h"

#ifndef TI_INLINE
#define TI_INLINE static inline __attribute__((always_inline))
#endif

/* The history letters, X(ID, letter), in bit order of struct ti_conn.seen. */
#define TI_CONN_LETTERS(X) \
	X(SYN, 'S')        \
	X(SYNACK, 'H')     \
	X(ACK, 'A')        \
	X(DATA, 'D')       \
	X(FIN, 'F')        \
	X(RST, 'R')        \
	X(RETRANS, 'T')    \
	X(ZERO_WINDOW, 'W')

enum ti_conn_letter {
#define TI_X(id, ch) TI_CL_##id,
	TI_CONN_LETTERS(TI_X)
#undef TI_X
		TI_CL_COUNT,
};

#define TI_CONN_SEQ (1U << 31) /* seen: next_seq holds a value */

/* letter i (its character ch) into the history, the first time only.
 * Locals here are 64-bit, as everywhere on the BPF side (bpf/ti_rules.h,
 * "Stack slots"). */
TI_INLINE void ti_conn_mark(struct ti_conn *c, __u64 i, __u64 ch)
{
	__u64 hl = c->hlen;

	if (c->seen & (1U << i))
		return;
	c->seen |= 1U << i;
	if (hl < TI_CONN_HISTORY) {
		c->history[hl & (TI_CONN_HISTORY - 1)] = (__u8)ch;
		c->hlen = (__u8)(hl + 1);
	}
}

#define TI_CONN_MARK(c, id, ch) ti_conn_mark(c, TI_CL_##id, ch)

/* A new entry for the connection whose first segment is e. */
TI_INLINE void ti_conn_init(struct ti_conn *c, const struct ti_event *e)
{
	__builtin_memset(c, 0, sizeof(*c));
	c->first_ts = c->last_ts = e->ts;
}

/* Add the incoming segment e to c.  Returns 1 when it ends the connection
 * at once (RST: c->end is TI_CONN_END_RST), else 0. */
TI_INLINE int ti_conn_step(struct ti_conn *c, const struct ti_event *e)
{
	__u64 f = e->flags, len = e->len;
	__u64 seglen = len + ((f & TI_SYN) ? 1 : 0) + ((f & TI_FIN) ? 1 : 0);
	__u64 end = (__u32)(e->seq + seglen);
	__s64 d;

	__sync_fetch_and_add(&c->segments, 1);
	__sync_fetch_and_add(&c->bytes, len);
	if (e->ts > c->last_ts)
		c->last_ts = e->ts;
	if (f & TI_RST) {
		TI_CONN_MARK(c, RST, 'R');
		c->end = TI_CONN_END_RST;
		return 1;
	}
	if (f & TI_SYN) {
		if (f & TI_ACK) {
			TI_CONN_MARK(c, SYNACK, 'H');
		} else {
			TI_CONN_MARK(c, SYN, 'S');
			c->syn_ts = e->ts;
		}
	} else if (f & TI_ACK) {
		if (c->syn_ts && !c->handshake_ns && e->ts >= c->syn_ts)
			c->handshake_ns = e->ts - c->syn_ts ? e->ts - c->syn_ts : 1;
		if (!len && !(f & TI_FIN))
			TI_CONN_MARK(c, ACK, 'A');
	}
	if (len)
		TI_CONN_MARK(c, DATA, 'D');
	if (f & TI_FIN) {
		TI_CONN_MARK(c, FIN, 'F');
		c->fin = 1;
	}
	if (!e->window && !(f & (TI_SYN | TI_FIN | TI_RST))) {
		__sync_fetch_and_add(&c->zero_windows, 1);
		TI_CONN_MARK(c, ZERO_WINDOW, 'W');
	}
	if (!seglen)
		return 0;
	if (!(c->seen & TI_CONN_SEQ)) {
		c->next_seq = (__u32)end;
		c->seen |= TI_CONN_SEQ;
		return 0;
	}
	d = (__s32)(e->seq - c->next_seq);
	if (d < 0 && !(seglen <= 1 && d == -1 && !(f & (TI_SYN | TI_FIN)))) {
		__sync_fetch_and_add(&c->retransmits, 1);
		TI_CONN_MARK(c, RETRANS, 'T');
	}
	if ((__s32)((__u32)end - c->next_seq) > 0)
		c->next_seq = (__u32)end;
	return 0;
}

/* The key of e's connection. */
TI_INLINE void ti_conn_key_of(struct ti_conn_key *k, const struct ti_event *e)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->netns = e->netns;
	k->family = e->family;
	__builtin_memcpy(k->saddr, e->saddr, 16);
	__builtin_memcpy(k->daddr, e->daddr, 16);
	k->sport = e->sport;
	k->dport = e->dport;
}

#endif /* TI_CONN_H */
