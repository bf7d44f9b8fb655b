// SPDX-License-Identifier: GPL-2.0-only
/* kernel_conns.c: connections' user-space half (conns = true), for both
 * backends through their conn_* operations (no Lua).
 *
 * The path (bpf/ti_rules.h, ti_conn_track; the step in bpf/ti_conn.h) puts
 * each connection in the "conns" table and ends it at a RST itself (a
 * conn-end record on the ring).  The rest of the ends are timed, and time
 * is user space's to watch: this walk, run from every poll, ends
 *   - a connection idle for idle_timeout ("idle"), or for
 *     TI_CONN_SYN_TIMEOUT_MS when it never got past a SYN, as conntrack
 *     keeps SYN_SENT entries shorter: a SYN flood cannot fill the table;
 *   - one that got a FIN and nothing for TI_CONN_FIN_TIMEOUT_MS since
 *     ("fin"): the entry waits out the close so that the last ACK, which
 *     comes after the FIN, finds it instead of opening a connection;
 *   - when a whole pass found the table full (max_conns entries, or the
 *     path could not insert: conns_untracked grew), the longest idle
 *     eighth ("evicted"), so that new connections find room.
 * Each ended entry is read, removed and handed out; an entry the path
 * updates between the read and the removal loses that segment (counted
 * nowhere; doc/modes.md, "Connections").  Work per poll is bounded: at
 * most TI_CONN_WALK entries, then the next poll continues.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "kernel_int.h"
#include "ti_conn.h"

struct ti_conn_aged {
	uint64_t last_ts;
	struct ti_conn_key key;
};

struct ti_conn_walk {
	uint64_t idle_ns, syn_ns, fin_ns;
	uint32_t max_conns;
	struct ti_conn_key next; /* the key the walk looks at next (in_pass) */
	bool in_pass;
	uint64_t expired, evicted;
	/* this pass: the entries seen, their ages (for an eviction) */
	struct ti_conn_aged *aged;
	uint32_t naged;
	uint64_t untracked_at_start;
};

int ti_conns_init(struct ti_kernel *k, const struct ti_load_opts *o)
{
	struct ti_conn_walk *w;

	if (!o->conns)
		return 0;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->aged = calloc(o->max_conns, sizeof(*w->aged));
	if (!w->aged) {
		free(w);
		return -ENOMEM;
	}
	w->idle_ns = o->idle_timeout_ms * 1000000ULL;
	w->syn_ns = (uint64_t)TI_CONN_SYN_TIMEOUT_MS * 1000000ULL;
	if (w->syn_ns > w->idle_ns)
		w->syn_ns = w->idle_ns;
	w->fin_ns = (uint64_t)TI_CONN_FIN_TIMEOUT_MS * 1000000ULL;
	if (w->fin_ns > w->idle_ns)
		w->fin_ns = w->idle_ns;
	w->max_conns = o->max_conns;
	k->cw = w;
	return 0;
}

void ti_conns_free(struct ti_kernel *k)
{
	if (!k->cw)
		return;
	free(k->cw->aged);
	free(k->cw);
	k->cw = NULL;
}

void ti_conns_stats(const struct ti_kernel *k, uint64_t out[TI_STAT_MAX])
{
	if (!k->cw)
		return;
	out[TI_STAT_CONNS_EXPIRED] += k->cw->expired;
	out[TI_STAT_CONNS_EVICTED] += k->cw->evicted;
}

/* Only a SYN (sent again, perhaps): no other letter. */
static bool syn_only(const struct ti_conn *c)
{
	return !(c->seen & ~(TI_CONN_SEQ | (1U << TI_CL_SYN) | (1U << TI_CL_RETRANS)));
}

/* How c ends at now, or TI_CONN_END_OPEN while it lives. */
static int due(const struct ti_conn_walk *w, const struct ti_conn *c, uint64_t now)
{
	uint64_t idle = now > c->last_ts ? now - c->last_ts : 0;

	if (c->fin && idle >= w->fin_ns)
		return TI_CONN_END_FIN;
	if (idle >= w->idle_ns || (syn_only(c) && idle >= w->syn_ns))
		return TI_CONN_END_IDLE;
	return TI_CONN_END_OPEN;
}

/* End key (reason end; -1: "fin" if a FIN came, else "open"): taken out
 * of the table into c, to fn.  0 if it had gone meanwhile. */
static int end_one(struct ti_kernel *k, const struct ti_conn_key *key, struct ti_conn *c, int end, ti_conn_fn fn,
		   void *ctx)
{
	int err = k->ops->conn_take(k, key, c);

	if (err && err != -ENOENT)
		return err;
	if (err == -ENOENT)
		return 0; /* ended meanwhile (a RST: its record tells) */
	c->end = (__u8)(end >= 0 ? end : c->fin ? TI_CONN_END_FIN : TI_CONN_END_OPEN);
	return fn(ctx, key, c) < 0 ? -ECANCELED : 1;
}

static int cmp_aged(const void *a, const void *b)
{
	const struct ti_conn_aged *x = a, *y = b;

	return x->last_ts < y->last_ts ? -1 : x->last_ts > y->last_ts;
}

/* The pass that found the table full ends: evict the longest idle eighth. */
static int evict(struct ti_kernel *k, ti_conn_fn fn, void *ctx, int *handed)
{
	struct ti_conn_walk *w = k->cw;
	uint32_t n = w->naged / 8 ? w->naged / 8 : 1;
	struct ti_conn c;
	int rc;

	qsort(w->aged, w->naged, sizeof(*w->aged), cmp_aged);
	for (uint32_t i = 0; i < n; i++) {
		rc = end_one(k, &w->aged[i].key, &c, TI_CONN_END_EVICTED, fn, ctx);
		if (rc > 0) {
			w->evicted++;
			(*handed)++;
		} else if (rc < 0) {
			return rc == -ECANCELED ? 0 : rc;
		}
	}
	return 0;
}

/* Every connection now, in the order they began (a replay's end of file,
 * end_conns): "fin" if a FIN came, else "open".  The table is read whole
 * first (a hash map's walk restarts when its current key goes), then each
 * entry taken in turn. */
static int end_all(struct ti_kernel *k, ti_conn_fn fn, void *ctx)
{
	struct ti_conn_walk *w = k->cw;
	struct ti_conn_key key, next;
	struct ti_conn c;
	int rc, handed = 0;
	bool first = true;

	w->naged = 0;
	w->in_pass = false;
	for (;;) {
		rc = k->ops->conn_next(k, first ? NULL : &key, &next);
		if (rc == -ENOENT)
			break;
		if (rc)
			return rc;
		first = false;
		key = next;
		if (w->naged < w->max_conns && !k->ops->conn_lookup(k, &key, &c)) {
			w->aged[w->naged].last_ts = c.first_ts; /* the sort key: when it began */
			w->aged[w->naged].key = key;
			w->naged++;
		}
	}
	qsort(w->aged, w->naged, sizeof(*w->aged), cmp_aged);
	for (uint32_t i = 0; i < w->naged; i++) {
		rc = end_one(k, &w->aged[i].key, &c, -1, fn, ctx);
		if (rc > 0)
			handed++;
		else if (rc < 0)
			return rc == -ECANCELED ? handed : rc;
	}
	w->naged = 0;
	return handed;
}

int ti_kernel_conns_expire(struct ti_kernel *k, uint64_t now, bool all, ti_conn_fn fn, void *ctx)
{
	struct ti_conn_walk *w = k->cw;
	struct ti_conn_key key;
	struct ti_conn c;
	uint64_t st[TI_STAT_MAX];
	int handed = 0, rc, end;
	bool last;

	if (!w)
		return -EOPNOTSUPP;
	if (all)
		return end_all(k, fn, ctx);
	for (int n = 0; n < TI_CONN_WALK; n++) {
		if (!w->in_pass) {
			w->naged = 0;
			if (!k->ops->stats(k, st))
				w->untracked_at_start = st[TI_STAT_CONNS_UNTRACKED];
			rc = k->ops->conn_next(k, NULL, &w->next);
			if (rc == -ENOENT)
				break; /* empty */
			if (rc)
				return rc;
			w->in_pass = true;
		}
		key = w->next;
		/* the successor first: this key may go (a removed key would
		 * restart a hash map's walk) */
		rc = k->ops->conn_next(k, &key, &w->next);
		last = rc == -ENOENT;
		if (rc && !last)
			return rc;
		if (!k->ops->conn_lookup(k, &key, &c)) {
			end = due(w, &c, now);
			if (end == TI_CONN_END_OPEN) {
				if (w->naged < w->max_conns) {
					w->aged[w->naged].last_ts = c.last_ts;
					w->aged[w->naged].key = key;
					w->naged++;
				}
			} else {
				rc = end_one(k, &key, &c, end, fn, ctx);
				if (rc > 0) {
					w->expired++;
					handed++;
				}
				if (rc < 0) {
					if (last)
						w->in_pass = false;
					return rc == -ECANCELED ? handed : rc;
				}
			}
		}
		if (last) {
			/* a pass ended: the table was full if it held max_conns
			 * entries or the path found no room meanwhile */
			bool full = w->naged >= w->max_conns;

			if (!full && !k->ops->stats(k, st))
				full = st[TI_STAT_CONNS_UNTRACKED] != w->untracked_at_start;
			w->in_pass = false;
			if (full && (rc = evict(k, fn, ctx, &handed)))
				return rc;
			break;
		}
	}
	return handed;
}

int ti_kernel_conns_each(struct ti_kernel *k, ti_conn_fn fn, void *ctx)
{
	struct ti_conn_key key, next;
	struct ti_conn c;
	bool first = true;
	int rc;

	if (!k->cw)
		return -EOPNOTSUPP;
	for (;;) {
		rc = k->ops->conn_next(k, first ? NULL : &key, &next);
		if (rc == -ENOENT)
			return 0;
		if (rc)
			return rc;
		first = false;
		key = next;
		if (k->ops->conn_lookup(k, &key, &c))
			continue;
		c.end = TI_CONN_END_OPEN;
		if (fn(ctx, &key, &c) < 0)
			return 0;
	}
}

int ti_conn_record(const void *rec, size_t size, struct ti_conn_key *key, struct ti_conn *c)
{
	const struct ti_event *e = rec;

	if (size < sizeof(*e) + sizeof(*c) || e->probe != TI_PROBE_CONN || e->caplen != sizeof(*c))
		return -1;
	ti_conn_key_of(key, e);
	memcpy(c, (const uint8_t *)rec + sizeof(*e), sizeof(*c));
	return 0;
}
