/* SPDX-License-Identifier: GPL-2.0-only */
/* ti.h: shared declarations of the Lua side of tcpinspect.core.
 *
 * One C file per Lua class: session.c (tcpinspect.session), map.c
 * (tcpinspect.map, a child of the session), packet.c (tcpinspect.packet);
 * plus options.c (Lua options -> struct ti_load_opts / ti_filter),
 * errors.c (fail tuples, option errors, errno names), core.c (the module).
 * Everything that talks to the kernel is in the kernel layer (kernel.h),
 * which knows nothing of Lua.
 */
#ifndef TI_H
#define TI_H

#include <signal.h>
#include <stdint.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <lua.h>
#include <lauxlib.h>
#include "kernel.h"
#include "parse.h" /* ti_parse_ports, ti_parse_cidr (no Lua) */

#define TI_SESSION_MT "tcpinspect.session"
#define TI_MAP_MT "tcpinspect.map"
#define TI_PACKET_MT "tcpinspect.packet"
#define TI_ERROR_MT "tcpinspect.error"
#define TI_CONN_MT "tcpinspect.conn"
#define TI_RECORDER_MT "tcpinspect.recorder"

struct ti_packet;
struct ti_pcap_writer;
struct ti_recorder;

#define TI_MAX_ARGS 16 /* fields on_packet can pass as arguments */

/* The userdata behind a tcpinspect.session. */
struct ti_session {
	int state;	     /* TI_OPEN, TI_CLOSED */
	struct ti_kernel *k; /* the kernel layer's (kernel.h), NULL once closed */
	/* event delivery */
	lua_State *L;		   /* valid only inside poll */
	int cb_error;		   /* a callback raised: its error object is on the stack */
	int delivered;		   /* callbacks run in this poll */
	double deadline;	   /* CLOCK_MONOTONIC: stop delivering after this */
	sig_atomic_t signals;	   /* ti_signal_count when this poll began */
	bool probes_changed;	   /* the tc link monitor changed what session.probes shows */
	bool stop;		   /* stop() was called: end delivery after this callback */
	bool cb_changed;	   /* on_packet from a callback: the next record takes the new one */
	struct ti_packet *view;	   /* the reused packet view (user value 2) */
	uint8_t args[TI_MAX_ARGS]; /* on_packet(fn, fields): the fields passed */
	int nargs;
	bool to_file;			/* on_packet(file): p.line written to it from C, no Lua call */
	double realtime_offset;		/* wall clock minus CLOCK_MONOTONIC, seconds */
	bool events;			/* records are delivered (the ring, or a replay's) */
	bool drops;			/* opened with drops = true (on_drop allowed) */
	bool sockets;			/* opened with sockets = true (filter.uid, .sk_state allowed) */
	bool conns;			/* opened with conns = true (on_conn, conns() allowed) */
	uint32_t aggregates;		/* the aggregate maps opened: bit 1 << enum ti_map_id */
	bool conns_flushed;		/* a replay's end: its open connections were handed out */
	bool conns_final;		/* end_conns: the next walk ends them all, as a replay's end */
	uint8_t drop_args[TI_MAX_ARGS]; /* on_drop(fn, fields): the fields passed */
	int drop_nargs;
	struct ti_pcap_writer *dump; /* session:dump(path): every delivered record, or NULL */
	struct ti_recorder *rec;     /* session:recorder{}: the window (recorder.c), or NULL */
	uint32_t snaplen;	     /* captured bytes of each record (open's or replay's snaplen) */
	char netns_path[256];	     /* netns=/container=: where filter.dev names an interface ("": here) */
};

enum { TI_OPEN = 1, TI_CLOSED = 2 };

/* errors.c */
int ti_fail(lua_State *L, int err, const char *fmt, ...);
const char *ti_errname(int err);
int ti_option_error(lua_State *L, const char *option, const char *fmt, ...);
int ti_usage_error(lua_State *L, const char *option, const char *fmt, ...);
void ti_error_register(lua_State *L);
const char *ti_push_list(lua_State *L, const char *const names[]);
const char *ti_suggest(const char *name, const char *const names[]);
const char *ti_push_suggestion(lua_State *L, const char *name, const char *const names[]);

/* options.c */
extern const char *const ti_option_keys[];
extern const char *const ti_filter_keys[];
extern const char *const ti_flag_names[];
void ti_check_options(lua_State *L, int idx, struct ti_load_opts *o);
void ti_check_filter(lua_State *L, int idx, struct ti_filter *f, const char *ctx, const char *netns_path);
void ti_check_filter_sockets(lua_State *L, const struct ti_filter *f, bool sockets);

/* session.c */
int ti_session_open(lua_State *L);
int ti_session_open_replay(lua_State *L);
void ti_session_register(lua_State *L);
extern const char *const ti_stat_names[];
extern const char *const ti_session_fields[];

/* map.c */
extern const char *const ti_map_names[];
void ti_map_register(lua_State *L);
int ti_map_new(lua_State *L, int session_idx, const char *name);

/* packet.c */
extern const char *const ti_probe_names[];
void ti_packet_register(lua_State *L);
struct ti_packet;
struct ti_packet *ti_packet_new_view(lua_State *L);
struct ti_event *ti_packet_event(struct ti_packet *p);
void ti_packet_set_valid(struct ti_packet *p, bool valid, double rt_offset);
void ti_packet_push_field(lua_State *L, const struct ti_packet *p, int field);
#define TI_PACKET_LINE_MAX 512
size_t ti_packet_line(const struct ti_packet *p, char *buf); /* p.line; no newline */
int ti_packet_field_index(const char *name);
/* a record: struct ti_event and its e.caplen bytes (size: at least that much) */
int ti_packet_set_record(struct ti_packet *p, const void *data, size_t size); /* 0 or -1 */
int ti_packet_push_record(lua_State *L, const void *data, size_t size, double rt_offset);
void ti_push_addr(lua_State *L, int family, const uint8_t *addr);
void ti_push_flagstr(lua_State *L, unsigned flags);
void ti_packet_note_dev(uint32_t netns, uint32_t ifindex, const char *name);

/* conn.c */
void ti_conn_register(lua_State *L);
void ti_conn_push(lua_State *L, const struct ti_conn_key *key, const struct ti_conn *c, double rt_offset);
extern const char *const *ti_conn_fields;
extern const char *const *ti_conn_end_names;
/* recorder.c: the flight recorder's window, fed by session.c's poll */
extern const char *const ti_recorder_option_keys[];
extern const char *const ti_recorder_dump_keys[];
extern const char *const ti_recorder_stat_names[];
int ti_recorder_new(lua_State *L);
void ti_recorder_register(lua_State *L);
/* a record into the window; delivered: the callbacks have had it */
void ti_recorder_push(struct ti_recorder *r, const void *data, size_t size, bool delivered);
/* records a dump drained from the ring that no callback has seen yet */
bool ti_recorder_has_pending(const struct ti_recorder *r);
/* hand them to fn in order until none is left or fn returns < 0 (its value) */
int ti_recorder_pending(struct ti_recorder *r, ti_record_fn fn, void *ctx);
void ti_recorder_free(struct ti_recorder *r);

/* signals.c */
extern volatile sig_atomic_t ti_pending_signal; /* the last trapped signal, 0: none */
extern volatile sig_atomic_t ti_signal_count;	/* trapped signals so far */
void ti_signals_register(lua_State *L);

/* CLOCK_MONOTONIC in seconds, the clock of p.ts */
static inline double ti_now_monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A ring record of size bytes (a segment's, a drop's, a conn end's) as a
 * whole struct ti_event and its caplen bytes, len bytes in all, copied to
 * dst: a compact record (TI_EVENT_COMPACT bytes, bpf/tcpinspect.h; its
 * caplen 0) made whole, its tail 0.  The view and the recorder's window
 * take records with it. */
static inline void ti_event_copy(void *dst, const void *rec, size_t size, size_t len)
{
	if (size == TI_EVENT_COMPACT) {
		memcpy(dst, rec, TI_EVENT_COMPACT);
		memset((char *)dst + TI_EVENT_COMPACT, 0, sizeof(struct ti_event) - TI_EVENT_COMPACT);
	} else {
		memcpy(dst, rec, len);
	}
}

/* core.c */
void ti_push_names(lua_State *L, const char *const names[], const char *field);

#endif /* TI_H */
