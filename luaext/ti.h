/* ti.h: shared declarations of the tcpinspect.core C module.
 *
 * One C file per Lua class:  session.c (tcpinspect.session),
 * map.c (tcpinspect.map), packet.c (tcpinspect.packet); plus helpers:
 * options.c (Lua options -> struct ti_config), hooks.c (choosing and
 * attaching the kernel hooks), errors.c (fail tuples), core.c (the module).
 */
#ifndef TI_H
#define TI_H

#include <stdint.h>
#include <stdbool.h>
#include <lua.h>
#include <lauxlib.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include "tcpinspect.h"

#define TI_SESSION_MT "tcpinspect.session"
#define TI_MAP_MT "tcpinspect.map"
#define TI_PACKET_MT "tcpinspect.packet"

struct tcpinspect_bpf;

enum ti_mode { TI_MODE_FENTRY, TI_MODE_KPROBE, TI_MODE_TC, TI_MODE_CGROUP, TI_MODE_AUTO };

#define TI_MAX_DEVS 32
#define TI_MAX_CIDRS 256

/* A parsed CIDR, in the byte order the LPM trie wants. */
struct ti_cidr {
	uint8_t family; /* 4 or 6 */
	uint8_t plen;
	uint8_t addr[16];
};

/* Everything a filter table says, ready to be written to the kernel. */
struct ti_filter {
	struct ti_config cfg; /* match bits, ports, flags, len, ifindex, family */
	struct ti_cidr saddr[TI_MAX_CIDRS];
	struct ti_cidr daddr[TI_MAX_CIDRS];
	struct ti_cidr host[TI_MAX_CIDRS];
	int nsaddr, ndaddr, nhost;
};

/* The open() options. */
struct ti_options {
	enum ti_mode mode;
	int family;          /* 0 any, 4, 6 */
	uint32_t sample;
	bool events;
	bool aggregates;
	uint32_t ring_size;
	uint32_t max_flows;
	uint32_t wakeup;     /* records per wakeup */
	char cgroup[512];    /* empty: the cgroup v2 root */
	int ndevs;           /* tc: 0 means every interface that is up */
	char devs[TI_MAX_DEVS][32];
	struct ti_filter *filter;
};

/* An attachment made by hooks.c, undone by ti_hooks_detach(). */
struct ti_tc_hook {
	int ifindex;
	uint32_t handle;   /* netlink filter handle; 0 when a tcx link is used */
	int link_fd;       /* tcx link, or -1 */
	char name[32];
};

struct ti_session {
	int state; /* TI_OPEN, TI_CLOSED */
	struct tcpinspect_bpf *skel;
	struct ring_buffer *rb;
	struct bpf_link *links[4];
	int nlinks;
	struct ti_tc_hook tc[TI_MAX_DEVS];
	int ntc;
	enum ti_mode mode;
	char probe_status[2][192]; /* tcp_v4_rcv, tcp_v6_rcv: "attached" or why not */
	char cgroup_path[512];
	uint32_t slot;          /* active configuration slot */
	struct ti_config base;  /* sample/events/... kept across set_filter */
	struct ti_filter *filter;         /* the filter asked for at open() */
	struct ti_filter *slot_filter[2]; /* copies of what each slot holds */
	int ncpus;
	/* event delivery */
	lua_State *L;       /* valid only inside poll */
	int cb_error;       /* a callback raised: its message is on the stack */
	int delivered;      /* callbacks run in this poll */
	int view_ref;       /* the reused packet view */
	struct ti_event *view_rec;
	double realtime_offset; /* wall clock minus CLOCK_MONOTONIC, seconds */
};

enum { TI_OPEN = 1, TI_CLOSED = 2 };

/* errors.c */
int ti_fail(lua_State *L, int err, const char *fmt, ...);
const char *ti_errname(int err);

/* options.c */
extern const char *const ti_option_keys[];
extern const char *const ti_filter_keys[];
void ti_check_options(lua_State *L, int idx, struct ti_options *o);
void ti_check_filter(lua_State *L, int idx, struct ti_filter *f, const char *ctx);
int ti_parse_ports(const char *spec, uint8_t *bits, char *err, size_t errlen);
int ti_parse_cidr(const char *spec, struct ti_cidr *out);
const char *ti_mode_name(enum ti_mode m);

/* hooks.c */
int ti_hooks_attach(struct ti_session *s, const struct ti_options *o, enum ti_mode mode,
		    char *why, size_t whylen);
int ti_check_privileges(enum ti_mode mode, char *why, size_t whylen);
void ti_libbpf_log_init(void);
const char *ti_libbpf_last_error(void);
void ti_hooks_detach(struct ti_session *s);
void ti_sweep_stale_tc(void);
int ti_write_filter(struct ti_session *s, const struct ti_filter *f);
void ti_base_config(struct ti_config *c, const struct ti_options *o);
int ti_cgroup_root(char *buf, size_t len);

/* session.c */
int ti_session_open(lua_State *L);
void ti_session_register(lua_State *L);

extern const char *const ti_stat_names[];
extern const char *const ti_session_fields[];

/* map.c */
extern const char *const ti_map_names[];
void ti_map_register(lua_State *L);
int ti_map_new(lua_State *L, int session_idx, const char *name);

/* packet.c */
void ti_packet_register(lua_State *L);
struct ti_event *ti_packet_new_view(lua_State *L);
int ti_packet_push_copy(lua_State *L, const struct ti_event *e, double rt_offset);
void ti_packet_set_valid(lua_State *L, int idx, bool valid, double rt_offset);
void ti_push_addr(lua_State *L, int family, const uint8_t *addr);
void ti_push_flagstr(lua_State *L, unsigned flags);
const char *ti_probe_name(int probe);

/* core.c */
int ti_features(lua_State *L);
double ti_now_monotonic(void);

#endif /* TI_H */
