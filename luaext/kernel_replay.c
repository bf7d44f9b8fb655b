// SPDX-License-Identifier: GPL-2.0-only
/* kernel_replay.c: the kernel layer's second backend: a pcap file run
 * through the kernel's own path in user space, without root (no Lua).
 *
 * Each frame of the capture (pcapfile.c takes the link layer off) goes
 * through the very code the BPF program runs, compiled for user space:
 * bpf/ti_parse.h's frame walk (ti_frame_segment, as tc and cgroup walk an
 * sk_buff), then bpf/ti_rules.h's ti_path (the counters, the filter, the
 * aggregates in tables laid out as the per-CPU maps with one CPU, sampling),
 * and what ti_path emits becomes the record the ring would have carried:
 * struct ti_event and up to snaplen bytes from the IP header on.  The LPM
 * tries of the address filters are the filter's CIDR lists, searched for a
 * prefix that holds the address (what an LPM lookup answers).
 *
 * Time is the capture's: a record's ts is its frame's timestamp (ns since
 * the epoch), and the replay's clock moves with the frames and with the
 * horizons the caller asks for (ti_replay_next), never with the wall clock.
 * The clock never goes backwards: a frame stamped before the clock is due
 * at once and handled at the clock's time, its record keeping its own ts.
 * Frames that are not ours (no IP, not received) do not move it.
 * The cost is per frame and per call, never per span of capture time:
 * ti_replay_next_ts says where the next frame is, so a caller with nothing
 * due can jump its horizon there.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernel_int.h"
#include "pcapfile.h"
#include "ti_table.h"

struct ti_replay;

/* ---- the user-space side of bpf/ti_parse.h and bpf/ti_rules.h ------------------------ */

/* The frame walk loads from the captured frame: what is not in the file
 * cannot be loaded, as bpf_skb_load_bytes cannot load past the skb. */
static inline int frame_load(const struct ti_pcap_frame *f, __u64 off, void *dst, __u64 n)
{
	if (off > f->caplen || n > f->caplen - off)
		return -1;
	memcpy(dst, f->data + off, n);
	return 0;
}

#define TI_PARSE_CTX const struct ti_pcap_frame *
#define TI_PARSE_LOAD(f, off, dst, n) frame_load(f, off, dst, n)
/* A capture does not say which frames were GSO segments: an IPv4 total
 * length 0 is the frame's original length, as tcpdump takes it (BIG TCP) */
#define TI_PARSE_GSO(f) 1

/* The rules' accesses to maps, tries, counters and the load config, on
 * the replay that x (struct ti_scratch, its first member) belongs to;
 * defined below, once struct ti_replay is. */
struct ti_scratch;
static const struct ti_load_config *replay_load(const struct ti_scratch *x);
static void replay_count(struct ti_scratch *x, int stat);
static struct ti_flow_entry *lookup_flows(struct ti_scratch *x, __u64 i);
static struct ti_source_entry *lookup_sources(struct ti_scratch *x, __u64 i);
static struct ti_table_sum *lookup_flows_sum(struct ti_scratch *x, __u64 i);
static struct ti_table_sum *lookup_sources_sum(struct ti_scratch *x, __u64 i);
static struct ti_port_val *lookup_ports(struct ti_scratch *x, __u64 i);
static __u64 *lookup_len_hist(struct ti_scratch *x, __u64 i);
static __u64 *lookup_sample_ctr(struct ti_scratch *x, __u64 i);
static int lpm_has(const struct ti_scratch *x, int trie, const struct ti_lpm_key *k);
static void emit(struct ti_scratch *x);
struct ti_conn_key;
struct ti_conn;
static struct ti_conn *conn_find(struct ti_scratch *x, const struct ti_conn_key *k);
static long conn_insert(struct ti_scratch *x, const struct ti_conn_key *k, const struct ti_conn *v);
static void conn_remove(struct ti_scratch *x, const struct ti_conn_key *k);
static void conn_emit(struct ti_scratch *x);

enum { TRIE_saddr_lpm, TRIE_daddr_lpm, TRIE_host_lpm };

#define TI_LOAD_CFG(x) (*replay_load(x))
#define TI_COUNT(x, stat) replay_count(x, stat)
#define TI_LOOKUP(x, map, key) lookup_##map(x, *(key))
#define TI_LPM_HAS(x, trie, key) lpm_has(x, TRIE_##trie, key)
#define TI_EMIT(x, e) emit(x)
#define TI_EXPR_MATCH(x, c) (ti_cbpf_run(&(c)->expr, (x)->pkt, (x)->buflen, (x)->ev.wirelen) != 0)
#define TI_CONN_LOOKUP(x, k) conn_find(x, k)
#define TI_CONN_INSERT(x, k, v) conn_insert(x, k, v)
#define TI_CONN_DELETE(x, k) conn_remove(x, k)
#define TI_CONN_EMIT(x) conn_emit(x)

#include "ti_rules.h"

#define NPORTS 65536

struct ti_replay {
	struct ti_scratch x; /* first: the rules' x */
	struct ti_load_config load;
	struct ti_filter filter[2]; /* the two slots: cfg and the tries' CIDRs */
	uint32_t slot;
	uint64_t stats[TI_STAT_MAX];
	/* the maps, one CPU's copy each */
	struct ti_flow_entry *flows;
	struct ti_source_entry *sources;
	uint32_t table_entries;			      /* of flows and of sources */
	struct ti_table_sum *flows_sum, *sources_sum; /* their summaries: a bucket each */
	struct ti_port_val *ports;
	__u64 len_hist[TI_HIST_SLOTS];
	__u64 sample_ctr;
	/* the capture */
	struct ti_pcap_reader rd;
	struct ti_pcap_frame f; /* the next frame, read but not handled (pending) */
	bool pending;
	bool at_end;	  /* the file ended in this ti_replay_next: the clock stays */
	uint64_t held_ns; /* the horizon that poll was asked for (0: none) */
	uint64_t clock_ns;
	uint32_t snaplen;
	/* a read error met after a record: reported by the next call */
	int read_err;
	char read_why[256];
	/* the "conns" table (conns = true): open addressing, linear probing,
	 * removal by backward shift; at most conn_max entries */
	struct replay_conn *conns;
	uint32_t conn_mask, conn_count, conn_max;
	/* a conn-end record ti_path emitted (a RST), handed out after the
	 * segment's own */
	bool conn_pending;
	union {
		struct ti_event ev;
		uint8_t bytes[sizeof(struct ti_event) + sizeof(struct ti_conn)];
	} conn_rec;
	/* what ti_path emitted for the frame just handled */
	bool emitted;
	size_t reclen;
	union {
		struct ti_event ev;
		uint8_t bytes[sizeof(struct ti_event) + 65536];
	} rec;
};

#define R(x) ((struct ti_replay *)(x))

struct replay_conn {
	bool used;
	struct ti_conn_key key;
	struct ti_conn val;
};

static uint32_t conn_hash(const struct ti_conn_key *k)
{
	const uint8_t *p = (const uint8_t *)k;
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < sizeof(*k); i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

/* k's slot, or -1 */
static int64_t conn_slot(const struct ti_replay *r, const struct ti_conn_key *k)
{
	if (!r->conns)
		return -1;
	for (uint32_t i = conn_hash(k) & r->conn_mask;; i = (i + 1) & r->conn_mask) {
		if (!r->conns[i].used)
			return -1;
		if (!memcmp(&r->conns[i].key, k, sizeof(*k)))
			return i;
	}
}

static struct ti_conn *conn_find(struct ti_scratch *x, const struct ti_conn_key *k)
{
	int64_t i = conn_slot(R(x), k);

	return i < 0 ? NULL : &R(x)->conns[i].val;
}

static long conn_insert(struct ti_scratch *x, const struct ti_conn_key *k, const struct ti_conn *v)
{
	struct ti_replay *r = R(x);
	uint32_t i;

	if (conn_slot(r, k) >= 0)
		return -EEXIST;
	if (!r->conns || r->conn_count >= r->conn_max)
		return -E2BIG; /* what a full BPF hash map answers */
	for (i = conn_hash(k) & r->conn_mask; r->conns[i].used; i = (i + 1) & r->conn_mask)
		;
	r->conns[i].used = true;
	r->conns[i].key = *k;
	r->conns[i].val = *v;
	r->conn_count++;
	return 0;
}

static void conn_remove(struct ti_scratch *x, const struct ti_conn_key *k)
{
	struct ti_replay *r = R(x);
	int64_t at = conn_slot(r, k);
	uint32_t i, j, h;

	if (at < 0)
		return;
	i = j = (uint32_t)at;
	for (;;) {
		j = (j + 1) & r->conn_mask;
		if (!r->conns[j].used)
			break;
		h = conn_hash(&r->conns[j].key) & r->conn_mask;
		/* j's entry may move back to i if its home is not in (i, j] */
		if ((i < j) ? (h <= i || h > j) : (h <= i && h > j)) {
			r->conns[i] = r->conns[j];
			i = j;
		}
	}
	r->conns[i].used = false;
	r->conn_count--;
}

static void conn_emit(struct ti_scratch *x)
{
	struct ti_replay *r = R(x);

	r->conn_rec.ev = x->ev;
	r->conn_rec.ev.probe = TI_PROBE_CONN;
	r->conn_rec.ev.caplen = sizeof(struct ti_conn);
	memcpy(r->conn_rec.bytes + sizeof(struct ti_event), &x->cv, sizeof(struct ti_conn));
	r->conn_pending = true;
}

static const struct ti_load_config *replay_load(const struct ti_scratch *x)
{
	return &((const struct ti_replay *)x)->load;
}

static void replay_count(struct ti_scratch *x, int stat)
{
	R(x)->stats[stat]++;
}

static struct ti_flow_entry *lookup_flows(struct ti_scratch *x, __u64 i)
{
	return i < R(x)->table_entries ? &R(x)->flows[i] : NULL;
}

static struct ti_source_entry *lookup_sources(struct ti_scratch *x, __u64 i)
{
	return i < R(x)->table_entries ? &R(x)->sources[i] : NULL;
}

static struct ti_table_sum *lookup_flows_sum(struct ti_scratch *x, __u64 i)
{
	return i < R(x)->table_entries / TI_TABLE_WAYS ? &R(x)->flows_sum[i] : NULL;
}

static struct ti_table_sum *lookup_sources_sum(struct ti_scratch *x, __u64 i)
{
	return i < R(x)->table_entries / TI_TABLE_WAYS ? &R(x)->sources_sum[i] : NULL;
}

static struct ti_port_val *lookup_ports(struct ti_scratch *x, __u64 i)
{
	return i < NPORTS ? &R(x)->ports[i] : NULL;
}

static __u64 *lookup_len_hist(struct ti_scratch *x, __u64 i)
{
	return i < TI_HIST_SLOTS ? &R(x)->len_hist[i] : NULL;
}

static __u64 *lookup_sample_ctr(struct ti_scratch *x, __u64 i)
{
	return i == 0 ? &R(x)->sample_ctr : NULL;
}

/* An LPM trie's lookup: does one of the slot's prefixes hold the key's
 * address?  (The key's prefixlen covers slot, family and address.) */
static int lpm_has(const struct ti_scratch *x, int trie, const struct ti_lpm_key *k)
{
	const struct ti_filter *f = &((const struct ti_replay *)x)->filter[k->slot & 1];
	const struct ti_cidr *c = trie == TRIE_saddr_lpm ? f->saddr : trie == TRIE_daddr_lpm ? f->daddr : f->host;
	int n = trie == TRIE_saddr_lpm ? f->nsaddr : trie == TRIE_daddr_lpm ? f->ndaddr : f->nhost;

	for (int i = 0; i < n; i++) {
		unsigned bits = c[i].plen, full = bits / 8, rest = bits % 8;

		if (c[i].family != k->family || 16u + bits > k->prefixlen)
			continue;
		if (memcmp(c[i].addr, k->addr, full))
			continue;
		if (rest && ((c[i].addr[full] ^ k->addr[full]) & (uint8_t)(0xff << (8 - rest))))
			continue;
		return 1;
	}
	return 0;
}

/* The record of the segment in x->ev: the event and its captured bytes
 * (at most snaplen, the segment's length, what the file holds). */
static void emit(struct ti_scratch *x)
{
	struct ti_replay *r = R(x);
	const struct ti_pcap_frame *f = &r->f;
	uint32_t wirelen = r->x.ev.wirelen; /* ti_bytes_wanted's */
	uint32_t avail = f->caplen > f->ip_off ? f->caplen - f->ip_off : 0, n = r->snaplen;

	if (n > wirelen)
		n = wirelen;
	if (n > avail)
		n = avail;
	r->rec.ev = r->x.ev;
	r->rec.ev.caplen = (uint16_t)n;
	memcpy(r->rec.bytes + sizeof(struct ti_event), f->data + f->ip_off, n);
	r->reclen = sizeof(struct ti_event) + n;
	r->emitted = true;
	r->stats[TI_STAT_DELIVERED]++;
}

/* ---- the replay ------------------------------------------------------------------ */

/* Read the next frame that may carry IP into r->f (pending): 1, 0 at the
 * end, -errno with why. */
static int read_pending(struct ti_replay *r, char *why, size_t whylen)
{
	int rc;

	/* a frame that is not ours does not move the clock: read ahead here,
	 * it would show the callback of the frame before a later time */
	while ((rc = ti_pcap_reader_next(&r->rd, &r->f, why, whylen)) == 2)
		;
	if (rc <= 0) {
		r->at_end = r->pending;
		r->pending = false;
		return rc;
	}
	r->pending = true;
	return 1;
}

int ti_replay_open(struct ti_replay **out, const char *path, const struct ti_load_config *load, uint32_t table_entries,
		   uint32_t snaplen, uint32_t max_conns, const struct ti_filter *f, char *why, size_t whylen)
{
	struct ti_replay *r = calloc(1, sizeof(*r));
	int err;

	*out = NULL;
	if (!r)
		return -ENOMEM;
	r->load = *load;
	r->table_entries = table_entries;
	r->snaplen = snaplen > 65535 ? 65535 : snaplen;
	/* a map that is off (open's aggregates) has one entry, never written,
	 * as the kernel's (kernel.c) */
	r->flows = calloc(load->aggregates & TI_AGG_FLOWS ? table_entries : 1, sizeof(*r->flows));
	r->sources = calloc(load->aggregates & TI_AGG_SOURCES ? table_entries : 1, sizeof(*r->sources));
	r->flows_sum =
		calloc(load->aggregates & TI_AGG_FLOWS ? table_entries / TI_TABLE_WAYS : 1, sizeof(*r->flows_sum));
	r->sources_sum =
		calloc(load->aggregates & TI_AGG_SOURCES ? table_entries / TI_TABLE_WAYS : 1, sizeof(*r->sources_sum));
	r->ports = calloc(load->aggregates & TI_AGG_PORTS ? NPORTS : 1, sizeof(*r->ports));
	if (!r->flows || !r->sources || !r->flows_sum || !r->sources_sum || !r->ports) {
		err = -ENOMEM;
		snprintf(why, whylen, "replay: out of memory for %u table entries", table_entries);
		goto fail;
	}
	if (load->conns) {
		uint32_t cap = 2;

		while (cap < 2 * (uint64_t)max_conns)
			cap <<= 1;
		r->conns = calloc(cap, sizeof(*r->conns));
		if (!r->conns) {
			err = -ENOMEM;
			snprintf(why, whylen, "replay: out of memory for max_conns = %u", max_conns);
			goto fail;
		}
		r->conn_mask = cap - 1;
		r->conn_max = max_conns;
	}
	if (f)
		r->filter[0] = *f;
	if ((err = ti_pcap_reader_open(&r->rd, path, why, whylen)))
		goto fail;
	if ((err = read_pending(r, why, whylen)) < 0)
		goto fail;
	r->clock_ns = r->pending ? r->f.ts_ns : 0;
	*out = r;
	return 0;
fail:
	ti_replay_close(r);
	return err;
}

int ti_replay_set_filter(struct ti_replay *r, const struct ti_filter *f)
{
	uint32_t idle = r->slot ^ 1;

	if (f)
		r->filter[idle] = *f;
	else
		memset(&r->filter[idle], 0, sizeof(r->filter[idle]));
	r->slot = idle;
	return 0;
}

/* The pending frame through the kernel's path. */
static void handle(struct ti_replay *r)
{
	struct ti_scratch *x = &r->x;
	__s64 rc;

	memset(&x->ev, 0, sizeof(x->ev));
	memset(&x->w, 0, sizeof(x->w.ip) + sizeof(x->w.th));
	x->ev.probe = TI_PROBE_PCAP;
	x->ev.ts = r->f.ts_ns;
	x->ev.ifindex = r->f.ifindex;
	x->ev.netns = r->load.netns;
	r->emitted = false;
	rc = ti_frame_segment(&r->f, r->f.ip_off, r->f.wirelen, r->f.v4, &x->ev, &x->w);
	if (rc < 0) {
		r->stats[TI_STAT_ERRORS]++;
	} else if (rc > 0) {
		/* the bytes a hook would copy (for the filter expression) */
		__u64 avail = r->f.caplen > r->f.ip_off ? r->f.caplen - r->f.ip_off : 0;
		__u64 n = ti_bytes_wanted(x, &r->filter[r->slot].cfg, r->slot, avail);

		memcpy(x->pkt, r->f.data + r->f.ip_off, n);
		ti_bytes_copied(x, n);
		ti_path(x, &r->filter[r->slot].cfg, r->slot);
	}
}

int ti_replay_next(struct ti_replay *r, uint64_t until_ns, const void **rec, size_t *size, char *why, size_t whylen)
{
	int rc;

	if (r->conn_pending) {
		r->conn_pending = false;
		*rec = r->conn_rec.bytes;
		*size = sizeof(r->conn_rec.bytes);
		return 1;
	}
	if (r->read_err) {
		rc = r->read_err;
		r->read_err = 0;
		snprintf(why, whylen, "%s", r->read_why);
		return rc;
	}
	/* after the poll that ended the file, the next horizon continues from
	 * the one that poll was asked for, not from the last frame: a run's
	 * ticks and duration stay on its grid (until_ns - clock is the wait) */
	if (r->held_ns > r->clock_ns && until_ns != UINT64_MAX && until_ns > r->clock_ns) {
		uint64_t wait = until_ns - r->clock_ns;

		until_ns = r->held_ns > UINT64_MAX - wait ? UINT64_MAX : r->held_ns + wait;
		r->held_ns = 0;
	}
	while (r->pending && r->f.ts_ns <= until_ns) {
		if (r->f.ts_ns > r->clock_ns)
			r->clock_ns = r->f.ts_ns;
		handle(r);
		rc = read_pending(r, r->read_why, sizeof(r->read_why));
		if (rc < 0 && !r->emitted && !r->conn_pending) {
			snprintf(why, whylen, "%s", r->read_why);
			return rc;
		}
		if (rc < 0)
			r->read_err = rc;
		if (r->emitted) {
			*rec = r->rec.bytes;
			*size = r->reclen;
			return 1;
		}
		if (r->conn_pending) {
			r->conn_pending = false;
			*rec = r->conn_rec.bytes;
			*size = sizeof(r->conn_rec.bytes);
			return 1;
		}
	}
	/* the poll in which the file ends leaves the clock at its last frame,
	 * so a run that ends with the file spans the capture exactly; the
	 * next horizon moves it on (a duration longer than the file) */
	if (r->at_end) {
		r->at_end = false;
		if (until_ns != UINT64_MAX && until_ns > r->clock_ns)
			r->held_ns = until_ns;
		return 0;
	}
	if (until_ns != UINT64_MAX && until_ns > r->clock_ns)
		r->clock_ns = until_ns;
	return 0;
}

uint64_t ti_replay_clock(const struct ti_replay *r)
{
	return r->clock_ns;
}

/* The timestamp of the next frame to handle (if not ended): what
 * a caller with nothing due before it may jump its horizon to.  It can be
 * below the clock (a frame stamped earlier than the one before it): the
 * next ti_replay_next delivers it at once and the clock stays. */
uint64_t ti_replay_next_ts(const struct ti_replay *r)
{
	return r->pending ? r->f.ts_ns : UINT64_MAX;
}

bool ti_replay_ended(const struct ti_replay *r)
{
	return !r->pending;
}

int ti_replay_linktype(const struct ti_replay *r)
{
	return r->rd.linktype;
}

void ti_replay_stats(const struct ti_replay *r, uint64_t out[TI_STAT_MAX])
{
	memcpy(out, r->stats, sizeof(r->stats));
}

/* A map's elements as BPF_MAP_LOOKUP_ELEM gives them for one CPU (and a
 * table's summary: TI_MAP_SUM). */
void *ti_replay_map(struct ti_replay *r, enum ti_map_id m, uint32_t *n)
{
	switch ((int)m) {
	case TI_MAP_SUM(TI_MAP_FLOWS):
		*n = r->load.aggregates & TI_AGG_FLOWS ? r->table_entries / TI_TABLE_WAYS : 1;
		return r->flows_sum;
	case TI_MAP_SUM(TI_MAP_SOURCES):
		*n = r->load.aggregates & TI_AGG_SOURCES ? r->table_entries / TI_TABLE_WAYS : 1;
		return r->sources_sum;
	case TI_MAP_FLOWS: *n = r->load.aggregates & TI_AGG_FLOWS ? r->table_entries : 1; return r->flows;
	case TI_MAP_SOURCES: *n = r->load.aggregates & TI_AGG_SOURCES ? r->table_entries : 1; return r->sources;
	case TI_MAP_PORTS: *n = r->load.aggregates & TI_AGG_PORTS ? NPORTS : 1; return r->ports;
	case TI_MAP_LEN_HIST: *n = TI_HIST_SLOTS; return r->len_hist;
	default: *n = 0; return NULL;
	}
}

void ti_replay_close(struct ti_replay *r)
{
	if (!r)
		return;
	ti_pcap_reader_close(&r->rd);
	free(r->flows);
	free(r->sources);
	free(r->flows_sum);
	free(r->sources_sum);
	free(r->ports);
	free(r->conns);
	free(r);
}

/* ---- the replay backend's operations (kernel_int.h) ------------------------------------ */

static int replay_set_filter(struct ti_kernel *k, const struct ti_filter *f)
{
	return ti_replay_set_filter(k->replay, f);
}

/* Capture time does not pass by waiting: ti_kernel_consume moves it. */
static int replay_wait(struct ti_kernel *k, int64_t timeout_ms)
{
	return 0;
}

static int replay_consume(struct ti_kernel *k, int64_t timeout_ms, ti_record_fn fn, void *ctx, char *why, size_t whylen)
{
	uint64_t clock = ti_replay_clock(k->replay);
	/* saturating: a clock near 2^64 ns stops there instead of wrapping */
	uint64_t until = timeout_ms < 0 || (uint64_t)timeout_ms > (UINT64_MAX - clock) / 1000000u
				 ? UINT64_MAX
				 : clock + (uint64_t)timeout_ms * 1000000u;
	char one[512];
	int rc;

	for (;;) {
		const void *rec;
		size_t size;

		rc = ti_replay_next(k->replay, until, &rec, &size, one, sizeof(one));
		if (rc <= 0)
			break;
		if (fn(ctx, rec, size) < 0)
			return 0; /* stopped: the clock stays at this record */
	}
	if (rc < 0)
		snprintf(why, whylen, "replay: %s", one);
	return rc;
}

/* A capture holds no fates: a replay has no drops. */
static int replay_drop_stats(const struct ti_kernel *k, uint64_t out[TI_DROP_CTR_SLOTS], char *why, size_t whylen)
{
	snprintf(why, whylen, "a replay has no drops: a capture holds what arrived, not what became of it");
	return -EOPNOTSUPP;
}

static int replay_stats(const struct ti_kernel *k, uint64_t out[TI_STAT_MAX])
{
	ti_replay_stats(k->replay, out);
	return 0;
}

static void replay_describe(const struct ti_kernel *k, struct ti_kernel_info *info)
{
	memset(info, 0, sizeof(*info));
	info->mode = "replay";
	info->netns_path = "";
	info->fd = -1;
	info->capture_clock = true;
	info->clock = ti_replay_clock(k->replay);
	info->ended = ti_replay_ended(k->replay);
	info->next_known = !info->ended;
	info->next_ts = ti_replay_next_ts(k->replay);
}

static void replay_hooks(const struct ti_kernel *k, ti_hook_fn fn, void *ctx)
{
	char status[96];

	snprintf(status, sizeof(status), "replaying a capture (%s)",
		 ti_pcap_linktype_name(ti_replay_linktype(k->replay)));
	fn(ctx, &(struct ti_hook_info){ .probe = ti_probe_key(TI_PROBE_PCAP), .status = status });
}

static int replay_test_run(const struct ti_kernel *k, const void *frame, size_t len, int repeat, int *retval,
			   uint32_t *ns, char *why, size_t whylen)
{
	snprintf(why, whylen, "test_run needs a session in tc or cgroup mode, not a replay");
	return -EOPNOTSUPP;
}

static uint32_t replay_map_elems(const struct ti_kernel *k, enum ti_map_id m)
{
	uint32_t n;

	ti_replay_map(k->replay, m, &n);
	return n;
}

/* elements [first, first + n) of map m (one CPU: one stride each), or NULL */
static uint8_t *replay_elems(const struct ti_kernel *k, enum ti_map_id m, uint32_t first, uint32_t n)
{
	uint32_t have;
	uint8_t *mem = ti_replay_map(k->replay, m, &have);

	return mem && first <= have && n <= have - first ? mem + (size_t)first * ti_map_stride(m) : NULL;
}

static int replay_map_read(const struct ti_kernel *k, enum ti_map_id m, uint32_t first, uint32_t n, void *vals)
{
	uint8_t *e = replay_elems(k, m, first, n);

	if (!e)
		return -ENOENT;
	memcpy(vals, e, (size_t)n * ti_map_stride(m));
	return 0;
}

static int replay_map_write(const struct ti_kernel *k, enum ti_map_id m, uint32_t first, uint32_t n, const void *vals)
{
	uint8_t *e = replay_elems(k, m, first, n);

	if (!e)
		return -ENOENT;
	memcpy(e, vals, (size_t)n * ti_map_stride(m));
	return 0;
}

/* the "conns" table (kernel_conns.c's walk): in slot order; a prev no
 * longer there starts again from the first, as a BPF hash map does */
static int replay_conn_next(const struct ti_kernel *k, const struct ti_conn_key *prev, struct ti_conn_key *next)
{
	const struct ti_replay *r = k->replay;
	int64_t at = prev ? conn_slot(r, prev) : -1;

	if (!r->conns)
		return -ENOENT;
	for (uint32_t i = (uint32_t)(at + 1); i <= r->conn_mask; i++) {
		if (r->conns[i].used) {
			*next = r->conns[i].key;
			return 0;
		}
	}
	return -ENOENT;
}

static int replay_conn_lookup(const struct ti_kernel *k, const struct ti_conn_key *key, struct ti_conn *c)
{
	int64_t at = conn_slot(k->replay, key);

	if (at < 0)
		return -ENOENT;
	*c = k->replay->conns[at].val;
	return 0;
}

static int replay_conn_take(const struct ti_kernel *k, const struct ti_conn_key *key, struct ti_conn *c)
{
	int64_t at = conn_slot(k->replay, key);

	if (at < 0)
		return -ENOENT;
	*c = k->replay->conns[at].val;
	conn_remove(&k->replay->x, key);
	return 0;
}

static void replay_release(struct ti_kernel *k)
{
	ti_replay_close(k->replay);
	k->replay = NULL;
}

static const struct ti_kernel_ops replay_ops = {
	.conn_next = replay_conn_next,
	.conn_lookup = replay_conn_lookup,
	.conn_take = replay_conn_take,
	.set_filter = replay_set_filter,
	.wait = replay_wait,
	.consume = replay_consume,
	.stats = replay_stats,
	.drop_stats = replay_drop_stats,
	.describe = replay_describe,
	.hooks = replay_hooks,
	.test_run = replay_test_run,
	.map_elems = replay_map_elems,
	.map_read = replay_map_read,
	.map_write = replay_map_write,
	.close = replay_release,
};

int ti_kernel_open_replay(struct ti_kernel **out, const struct ti_load_opts *o, const struct ti_filter *f,
			  const char *path, uint32_t snaplen, char *why, size_t whylen)
{
	struct ti_kernel *k = calloc(1, sizeof(*k));
	struct ti_load_config c;
	int err;

	*out = NULL;
	why[0] = '\0';
	if (!k) {
		snprintf(why, whylen, "replay: out of memory");
		return -ENOMEM;
	}
	ti_set_load_config(&c, o, TI_MODE_AUTO);
	c.netns = 0; /* a capture does not say */
	err = ti_replay_open(&k->replay, path, &c, ti_table_buckets(o->max_flows) * TI_TABLE_WAYS, snaplen,
			     o->max_conns, f, why, whylen);
	if (err) {
		free(k);
		return err;
	}
	k->ops = &replay_ops;
	k->ncpus = 1;
	if ((err = ti_conns_init(k, o))) {
		snprintf(why, whylen, "replay: out of memory for max_conns = %u", o->max_conns);
		ti_kernel_close(k);
		return err;
	}
	*out = k;
	return 0;
}
