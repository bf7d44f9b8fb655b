// SPDX-License-Identifier: GPL-2.0-only
/* core.c: luaopen_tcpinspect_core, the private C core wrapped by
 * lua/tcpinspect.lua.  Holds what belongs to no class: features(), clocks,
 * and the constants.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <bpf/libbpf.h>
#include "ti.h"
#include "expr.h"

static int core_monotonic(lua_State *L)
{
	lua_pushnumber(L, ti_now_monotonic());
	return 1;
}

/* core.drop_privileges(user) -> true | nil, msg, errno: tcpdump's -Z. */
static int core_drop_privileges(lua_State *L)
{
	const char *user;
	char why[512];
	size_t len;
	int err;

	if (lua_type(L, 1) != LUA_TSTRING)
		ti_option_error(L, "user", "expected a user name, got %s", luaL_typename(L, 1));
	user = lua_tolstring(L, 1, &len);
	if (!len || strlen(user) != len)
		ti_option_error(L, "user", "an empty name or one holding a NUL byte");
	if ((err = ti_drop_privileges(user, why, sizeof(why))))
		return ti_fail(L, err, "drop_privileges: %s", why);
	lua_pushboolean(L, 1);
	return 1;
}

static int core_sleep(lua_State *L)
{
	double s = luaL_checknumber(L, 1);
	struct timespec ts;

	if (s > 0) {
		ts.tv_sec = (time_t)s;
		ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
		nanosleep(&ts, NULL);
	}
	return 0;
}

_Static_assert(TI_MODE_AUTO == TI_MODE_COUNT - 1, "core_features: TI_MODES lists auto last");

/* tcpinspect.features() -> table of booleans, with .reasons and .kernel.
 * Each mode is tried for real by the kernel layer: load and attach, undo. */
static int core_features(lua_State *L)
{
	bool btf = ti_kernel_btf_loads();
	struct utsname u;
	char why[1024];
	bool tcx = false;

	lua_newtable(L);
	lua_newtable(L); /* reasons */
	lua_pushboolean(L, btf);
	lua_setfield(L, -3, "btf");
	if (!btf) {
		lua_pushliteral(L, "no kernel BTF (/sys/kernel/btf/vmlinux): needs CONFIG_DEBUG_INFO_BTF=y");
		lua_setfield(L, -2, "btf");
	}
	lua_pushboolean(L, ti_kernel_has_ringbuf());
	lua_setfield(L, -3, "ringbuf");
	/* every mode of TI_MODES but auto, which is last */
	for (enum ti_mode m = 0; m < TI_MODE_AUTO; m++) {
		bool ok = !ti_kernel_probe_mode(m, m == TI_MODE_TC ? &tcx : NULL, why, sizeof(why));

		if (!ok) {
			lua_pushstring(L, why);
			lua_setfield(L, -2, ti_mode_names[m]);
		}
		lua_pushboolean(L, ok);
		lua_setfield(L, -3, ti_mode_names[m]);
	}
	lua_pushboolean(L, tcx);
	lua_setfield(L, -3, "tcx");
	/* drops: the drop hook alone, loaded and attached, then removed */
	{
		bool ok = !ti_kernel_probe_drops(why, sizeof(why));

		if (!ok) {
			lua_pushstring(L, why);
			lua_setfield(L, -2, "drops");
		}
		lua_pushboolean(L, ok);
		lua_setfield(L, -3, "drops");
	}
	/* sockets = true: the receiving socket is read from the kernel's
	 * structures (CAP_PERFMON, BTF for the CO-RE reads); which hook names
	 * it (doc/modes.md, "The receiving socket") is in its reason, always
	 * set; sockets_drops: drop records name it too (rx_sk, 6.11+) */
	{
		bool ok = ti_kernel_sockets_ok(), rx = ok && ti_kernel_drop_has_rx_sk();

		lua_pushboolean(L, ok);
		lua_setfield(L, -3, "sockets");
		if (!ok)
			lua_pushliteral(L,
					"sockets = true reads the receiving socket from the kernel: needs CAP_PERFMON "
					"(or CAP_SYS_ADMIN) and the kernel's BTF");
		else
			lua_pushliteral(
				L, "tc: the socket the kernel's lookup finds (listener, request, established, "
				   "time-wait); cgroup: the full socket taking the segment (the listener for a "
				   "SYN and a handshake's last ACK); fentry, kprobe: the socket early demux found, "
				   "else the one the kernel passes to sk_filter_trim_cap (as cgroup), nil for a "
				   "segment that reaches none (no listener, time-wait without early demux)");
		lua_setfield(L, -2, "sockets");
		lua_pushboolean(L, rx);
		lua_setfield(L, -3, "sockets_drops");
		if (!rx) {
			lua_pushliteral(L, "drop records name the receiving socket where skb:kfree_skb has rx_sk "
					   "(Linux 6.11+, with CAP_PERFMON and BTF); this kernel's does not");
			lua_setfield(L, -2, "sockets_drops");
		}
		lua_pushboolean(L, false);
		lua_setfield(L, -3, "replay_sockets");
		lua_pushliteral(L, "a capture holds no sockets: a replay's socket fields are nil");
		lua_setfield(L, -2, "replay_sockets");
	}
	/* a replay never has drops, whatever this kernel can do */
	lua_pushboolean(L, false);
	lua_setfield(L, -3, "replay_drops");
	lua_pushliteral(L, "a capture holds what arrived, not what became of it: on_drop never fires in a replay");
	lua_setfield(L, -2, "replay_drops");
	lua_setfield(L, -2, "reasons");
	if (uname(&u) == 0) {
		lua_pushstring(L, u.release);
		lua_setfield(L, -2, "kernel");
	}
	return 1;
}

/* tcpinspect.drop_reasons() -> {name, ...}: the running kernel's drop
 * reasons (enum skb_drop_reason in its BTF) in value order, without the
 * SKB_DROP_REASON_ prefix; {} without BTF. */
static int core_drop_reasons(lua_State *L)
{
	const char *name;

	lua_newtable(L);
	for (size_t i = 0; (name = ti_drop_reason_at(i)); i++) {
		lua_pushstring(L, name);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 1;
}

static int core_flagstr(lua_State *L)
{
	lua_Integer f = luaL_checkinteger(L, 1);

	luaL_argcheck(L, f >= 0 && f <= 255, 1, "TCP flags are 0-255");
	ti_push_flagstr(L, (unsigned)f);
	return 1;
}

void ti_push_names(lua_State *L, const char *const names[], const char *field)
{
	lua_newtable(L);
	for (int i = 0; names[i]; i++) {
		lua_pushstring(L, names[i]);
		lua_rawseti(L, -2, i + 1);
	}
	lua_setfield(L, -2, field);
}

/* check_options(opts) -> true: every check open() makes on its options,
 * raising the same errors, without loading anything (for command lines that
 * validate early and open late). */
static int core_check_options(lua_State *L)
{
	struct ti_load_opts o;
	struct ti_filter *f;

	lua_settop(L, 1);
	ti_check_options(L, 1, &o);
	f = lua_newuserdatauv(L, sizeof(*f), 0);
	lua_getfield(L, 1, "filter");
	ti_check_filter(L, -1, f, "filter", o.scope.netns_path);
	ti_check_filter_sockets(L, f, o.sockets);
	lua_pushboolean(L, 1);
	return 1;
}

/* versions() -> {libbpf = "1.1", kernel = "6.1.0-..."}: the libbpf this
 * module runs with and the running kernel's release (for --version). */
static int core_versions(lua_State *L)
{
	struct utsname u;

	lua_createtable(L, 0, 2);
	lua_pushfstring(L, "%d.%d", (int)libbpf_major_version(), (int)libbpf_minor_version());
	lua_setfield(L, -2, "libbpf");
	lua_pushstring(L, uname(&u) == 0 ? u.release : "unknown");
	lua_setfield(L, -2, "kernel");
	return 1;
}

/* resolve(name) -> {address, ...} | nil, message, errno: every IPv4 and IPv6
 * address of a host name (getaddrinfo), in its order, without repeats. */
static int core_resolve(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	struct addrinfo hints, *res, *ai;
	int rc, n = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(name, NULL, &hints, &res);
	if (rc) {
		/* getaddrinfo's own codes, as the errno they mean */
		int err = rc == EAI_SYSTEM   ? errno
			  : rc == EAI_MEMORY ? ENOMEM
			  : rc == EAI_AGAIN  ? EAGAIN
			  : rc == EAI_NONAME ? ENOENT
					     : EINVAL;

		return ti_fail(L, err, "cannot resolve '%s': %s", name,
			       rc == EAI_SYSTEM ? strerror(err) : gai_strerror(rc));
	}
	lua_newtable(L); /* the list */
	lua_newtable(L); /* seen */
	for (ai = res; ai; ai = ai->ai_next) {
		char buf[INET6_ADDRSTRLEN];
		const void *a;

		if (ai->ai_family == AF_INET)
			a = &((struct sockaddr_in *)ai->ai_addr)->sin_addr;
		else if (ai->ai_family == AF_INET6)
			a = &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
		else
			continue;
		if (!inet_ntop(ai->ai_family, a, buf, sizeof(buf)))
			continue;
		if (lua_getfield(L, -1, buf) == LUA_TNIL) {
			lua_pushstring(L, buf);
			lua_rawseti(L, -4, ++n);
			lua_pushboolean(L, 1);
			lua_setfield(L, -3, buf);
		}
		lua_pop(L, 1);
	}
	freeaddrinfo(res);
	lua_pop(L, 1);
	return 1;
}

/* Expose the session methods table so the Lua wrapper can add run() etc. */
static void push_session_methods(lua_State *L)
{
	luaL_getmetatable(L, TI_SESSION_MT);
	lua_getfield(L, -1, "__methods");
	lua_remove(L, -2);
}

/* errname(errno) -> "EMFILE": the name of an errno, as fail tuples give it. */
static int core_errname(lua_State *L)
{
	lua_Integer e = luaL_checkinteger(L, 1);

	luaL_argcheck(L, e > 0 && e < 4096, 1, "not an errno");
	lua_pushstring(L, ti_errname((int)e));
	return 1;
}

/* ---- for the CLI: one implementation each, shared with the C side ---------------- */

/* sockets_ok() -> boolean: can open's sockets = true read the receiving
 * socket here (the privilege and the BTF it needs; features().sockets'
 * test, without its probe loads).  The CLI's drop views ask for sockets
 * where they can: a full accept queue's refusals are seen through the
 * listener (doc/modes.md, "Listen overflow"). */
static int core_sockets_ok(lua_State *L)
{
	lua_pushboolean(L, ti_kernel_sockets_ok());
	return 1;
}

/* suggest(word, {name, ...}) -> the name closest to word if it is close
 * enough to be a typo, or nil: errors.c's ti_suggest, the rule of every
 * "did you mean" (options, fields, commands). */
static int core_suggest(lua_State *L)
{
	const char *word = luaL_checkstring(L, 1);
	lua_Integer n;
	const char **names;
	const char *found;

	luaL_checktype(L, 2, LUA_TTABLE);
	n = luaL_len(L, 2);
	luaL_argcheck(L, n >= 0 && n < 4096, 2, "too many names");
	names = lua_newuserdatauv(L, sizeof(*names) * (size_t)(n + 1), 0);
	for (lua_Integer i = 0; i < n; i++) {
		/* the strings stay anchored in the table (argument 2) */
		if (lua_rawgeti(L, 2, i + 1) != LUA_TSTRING)
			return luaL_argerror(L, 2, "expected a list of strings");
		names[i] = lua_tostring(L, -1);
		lua_pop(L, 1);
	}
	names[n] = NULL;
	found = ti_suggest(word, names);
	if (found)
		lua_pushstring(L, found);
	else
		lua_pushnil(L);
	return 1;
}

/* netns_path(inode) -> a file naming that network namespace
 * (/run/netns/NAME first, else /proc/PID/ns/net), or nil, "ENOENT: ...",
 * errno; netns_inode() -> this thread's.  For `top --by netns`. */
static int core_netns_path(lua_State *L)
{
	lua_Integer ino = luaL_checkinteger(L, 1);
	char path[256];
	int err;

	luaL_argcheck(L, ino > 0 && ino <= UINT32_MAX, 1, "not a namespace inode");
	if ((err = ti_netns_find((uint32_t)ino, path, sizeof(path))))
		return ti_fail(L, err, "netns_path: no /run/netns entry or process names network namespace %u",
			       (unsigned)ino);
	lua_pushstring(L, path);
	return 1;
}

static int core_netns_inode(lua_State *L)
{
	lua_pushinteger(L, ti_netns_inode());
	return 1;
}

/* set_debug(on): all of libbpf's log (its debug lines too) on stderr. */
static int core_set_debug(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TBOOLEAN);
	ti_kernel_set_verbose(lua_toboolean(L, 1));
	return 0;
}

/* ---- filter expressions (luaext/expr.c, bpf/ti_cbpf.h) ---------------------------- */

/* expr_compile(expr) -> list of {code=, jt=, jf=, k=}, or nil, message, errno (EINVAL):
 * the classic BPF program filter.expr runs in the kernel. */
static int core_expr_compile(lua_State *L)
{
	struct ti_cbpf_prog *p = lua_newuserdatauv(L, sizeof(*p), 0);
	char err[512];

	if (ti_expr_compile(luaL_checkstring(L, 1), p, err, sizeof(err)))
		return ti_fail(L, EINVAL, "%s", err);
	lua_createtable(L, (int)p->len, 0);
	for (uint32_t i = 0; i < p->len; i++) {
		lua_createtable(L, 0, 4);
		lua_pushinteger(L, p->insns[i].code);
		lua_setfield(L, -2, "code");
		lua_pushinteger(L, p->insns[i].jt);
		lua_setfield(L, -2, "jt");
		lua_pushinteger(L, p->insns[i].jf);
		lua_setfield(L, -2, "jf");
		lua_pushinteger(L, p->insns[i].k);
		lua_setfield(L, -2, "k");
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 1;
}

/* expr_match(expr, bytes [, wirelen [, engine]]) -> boolean, or nil, message, errno (EINVAL).
 * bytes: a segment from its IP header on; wirelen defaults to #bytes.
 * engine "tcpinspect" (default): bpf/ti_cbpf.h on the bytes a hook would
 * copy for a filter (the first TI_CBPF_WINDOW); "pcap": libpcap's
 * pcap_offline_filter on all of them.  For the differential specs. */
static int core_expr_match(lua_State *L)
{
	const char *expr = luaL_checkstring(L, 1);
	size_t n;
	const uint8_t *buf = (const uint8_t *)luaL_checklstring(L, 2, &n);
	lua_Integer wirelen = luaL_optinteger(L, 3, (lua_Integer)n);
	const char *engine = luaL_optstring(L, 4, "tcpinspect");
	char err[512];
	int v;

	luaL_argcheck(L, wirelen >= 0 && wirelen <= TI_LEN_MAX, 3, "out of range 0-4294967295");
	if (!strcmp(engine, "pcap")) {
		v = ti_expr_offline(expr, buf, (uint32_t)n, (uint32_t)wirelen, err, sizeof(err));
	} else if (!strcmp(engine, "tcpinspect")) {
		/* the last expression's program, kept: one expression runs on
		 * thousands of segments in a row in the specs */
		static struct {
			char expr[1024];
			struct ti_cbpf_prog p;
			bool valid;
		} c;

		v = 0;
		if (!c.valid || strcmp(c.expr, expr)) {
			c.valid = false;
			v = ti_expr_compile(expr, &c.p, err, sizeof(err));
			if (!v && strlen(expr) < sizeof(c.expr)) {
				strcpy(c.expr, expr);
				c.valid = true;
			}
		}
		if (!v)
			v = c.p.len == 0 ||
			    ti_cbpf_run(&c.p, buf, n < TI_CBPF_WINDOW ? n : TI_CBPF_WINDOW, (uint64_t)wirelen) != 0;
	} else {
		return luaL_argerror(L, 4, "expected \"tcpinspect\" or \"pcap\"");
	}
	if (v < 0)
		return ti_fail(L, EINVAL, "%s", err);
	lua_pushboolean(L, v);
	return 1;
}

int luaopen_tcpinspect_core(lua_State *L)
{
	static const luaL_Reg funcs[] = {
		{ "open", ti_session_open },
		{ "replay", ti_session_open_replay },
		{ "features", core_features },
		{ "monotonic", core_monotonic },
		{ "sleep", core_sleep },
		{ "drop_privileges", core_drop_privileges },
		{ "flagstr", core_flagstr },
		{ "check_options", core_check_options },
		{ "errname", core_errname },
		{ "versions", core_versions },
		{ "resolve", core_resolve },
		{ "expr_compile", core_expr_compile },
		{ "expr_match", core_expr_match },
		{ "suggest", core_suggest },
		{ "sockets_ok", core_sockets_ok },
		{ "netns_path", core_netns_path },
		{ "netns_inode", core_netns_inode },
		{ "set_debug", core_set_debug },
		{ "drop_reasons", core_drop_reasons },
		{ NULL, NULL },
	};

	ti_kernel_log_init();
	ti_error_register(L);
	ti_session_register(L);
	ti_map_register(L);
	ti_recorder_register(L);
	luaL_newlib(L, funcs);
	ti_packet_register(L);
	ti_conn_register(L);
	ti_signals_register(L);
	/* TCP flag bits: FIN = 1, SYN = 2, ... */
#define TI_X(id, bit, name, letter) (lua_pushinteger(L, bit), lua_setfield(L, -2, #id));
	TI_TCP_FLAGS(TI_X)
#undef TI_X
	push_session_methods(L);
	lua_setfield(L, -2, "session_methods");
	ti_push_names(L, ti_option_keys, "option_names");
	ti_push_names(L, ti_filter_keys, "filter_keys");
	ti_push_names(L, ti_stat_names, "stat_names");
	ti_push_names(L, ti_map_names, "map_names");
	ti_push_names(L, ti_recorder_option_keys, "recorder_option_names");
	ti_push_names(L, ti_recorder_dump_keys, "recorder_dump_option_names");
	ti_push_names(L, ti_recorder_stat_names, "recorder_stat_names");
	ti_push_names(L, ti_session_fields, "session_fields");
	ti_push_names(L, ti_flag_names, "flag_names");
	ti_push_names(L, ti_probe_names, "probe_names");
	ti_push_names(L, ti_mode_names, "mode_names");
	lua_pushinteger(L, TI_HIST_SLOTS);
	lua_setfield(L, -2, "hist_slots");
	lua_pushinteger(L, TI_SNAPLEN_MAX);
	lua_setfield(L, -2, "SNAPLEN_MAX");
	lua_pushinteger(L, TI_CBPF_WINDOW);
	lua_setfield(L, -2, "EXPR_WINDOW");
	return 1;
}
