// SPDX-License-Identifier: GPL-2.0-only
/* options.c: open() options and filter tables, checked and turned into the
 * structures the kernel reads.  Every mistake raises an error that names the
 * option and the bad value:  tcpinspect: option 'filter.dport': ...
 *
 * The port and CIDR strings go to the plain-C parsers of parse.c (fuzzed
 * without Lua: spec/fuzz/).
 */
#include <ctype.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "ti.h"
#include "expr.h"
#include "parse.h"

#define OPT_ERR ti_option_error

/* The string at idx, refused when it holds a NUL byte: C would see only
 * what comes before it ("80\0junk" is not port 80). */
static const char *check_cstr(lua_State *L, int idx, const char *name)
{
	size_t len;
	const char *s = lua_tolstring(L, idx, &len);

	if (s && strlen(s) != len)
		OPT_ERR(L, name, "the string holds a NUL byte (at byte %d)", (int)strlen(s) + 1);
	return s;
}

/* ---- ports (parsed by ti_parse_ports, parse.c) ---------------------------- */

static void check_ports(lua_State *L, int idx, const char *name, uint8_t *bits)
{
	char err[256];

	idx = lua_absindex(L, idx);
	if (lua_type(L, idx) == LUA_TNUMBER) {
		lua_Integer v;

		if (!lua_isinteger(L, idx))
			OPT_ERR(L, name, "%s is not an integer port", lua_tostring(L, idx));
		v = lua_tointeger(L, idx);
		if (v < 0 || v > 65535)
			OPT_ERR(L, name, "port %I out of range 0-65535", v);
		bits[v >> 3] |= 1u << (v & 7);
	} else if (lua_type(L, idx) == LUA_TSTRING) {
		if (ti_parse_ports(check_cstr(L, idx, name), bits, err, sizeof(err)))
			OPT_ERR(L, name, "%s", err);
	} else if (lua_type(L, idx) == LUA_TTABLE) {
		lua_Integer n = luaL_len(L, idx);

		if (n == 0)
			OPT_ERR(L, name, "empty list of ports");
		for (lua_Integer i = 1; i <= n; i++) {
			lua_geti(L, idx, i);
			if (lua_type(L, -1) == LUA_TTABLE)
				OPT_ERR(L, name, "nested tables are not ports");
			check_ports(L, -1, name, bits);
			lua_pop(L, 1);
		}
	} else {
		OPT_ERR(L, name, "expected a port, a range string or a list, got %s", luaL_typename(L, idx));
	}
}

/* ---- addresses (parsed by ti_parse_cidr, parse.c) -------------------------- */

static void check_cidrs(lua_State *L, int idx, const char *name, struct ti_cidr *out, int *n)
{
	idx = lua_absindex(L, idx);
	if (lua_type(L, idx) == LUA_TSTRING) {
		if (*n >= TI_MAX_CIDRS)
			OPT_ERR(L, name, "more than %d addresses", TI_MAX_CIDRS);
		if (ti_parse_cidr(check_cstr(L, idx, name), &out[*n]))
			OPT_ERR(L, name, "'%s' is not an IPv4/IPv6 address or CIDR", lua_tostring(L, idx));
		(*n)++;
	} else if (lua_type(L, idx) == LUA_TTABLE) {
		lua_Integer len = luaL_len(L, idx);

		if (len == 0)
			OPT_ERR(L, name, "empty list of addresses");
		for (lua_Integer i = 1; i <= len; i++) {
			lua_geti(L, idx, i);
			if (lua_type(L, -1) != LUA_TSTRING)
				OPT_ERR(L, name, "list item %d is a %s, expected an address string", (int)i,
					luaL_typename(L, -1));
			check_cidrs(L, -1, name, out, n);
			lua_pop(L, 1);
		}
	} else {
		OPT_ERR(L, name, "expected an address/CIDR string or a list, got %s", luaL_typename(L, idx));
	}
}

/* ---- flags ---------------------------------------------------------------- */

const char *const ti_flag_names[] = {
#define TI_X(id, bit, name, letter) name,
	TI_TCP_FLAGS(TI_X)
#undef TI_X
		NULL,
};

static unsigned flag_bit(const char *s)
{
	char low[8];
	size_t i;

	for (i = 0; s[i] && i < sizeof(low) - 1; i++)
		low[i] = tolower((unsigned char)s[i]);
	low[i] = '\0';
	if (s[i])
		return 0;
	for (i = 0; ti_flag_names[i]; i++)
		if (!strcmp(low, ti_flag_names[i]))
			return 1u << i; /* the table is in bit order */
	return 0;
}

static unsigned check_flags(lua_State *L, int idx, const char *name)
{
	unsigned mask = 0;

	idx = lua_absindex(L, idx);
	if (lua_isinteger(L, idx)) {
		lua_Integer v = lua_tointeger(L, idx);

		if (v <= 0 || v > 255)
			OPT_ERR(L, name, "flag mask %I out of range 1-255", v);
		return (unsigned)v;
	}
	if (lua_type(L, idx) == LUA_TSTRING) {
		/* "syn", or several separated by commas or '|' */
		char buf[128], *tok, *save;

		const char *str = check_cstr(L, idx, name);

		if (strlen(str) >= sizeof(buf))
			OPT_ERR(L, name, "flag list too long (%d bytes, at most %d)", (int)strlen(str),
				(int)sizeof(buf) - 1);
		memcpy(buf, str, strlen(str) + 1);
		for (tok = strtok_r(buf, ",| ", &save); tok; tok = strtok_r(NULL, ",| ", &save)) {
			unsigned b = flag_bit(tok);

			if (!b) /* the names: ti_flag_names, from TI_TCP_FLAGS */
				OPT_ERR(L, name, "unknown TCP flag '%s'%s (known: %s)", tok,
					ti_push_suggestion(L, tok, ti_flag_names), ti_push_list(L, ti_flag_names));
			mask |= b;
		}
		if (!mask)
			OPT_ERR(L, name, "no flags named");
		return mask;
	}
	if (lua_type(L, idx) == LUA_TTABLE) {
		lua_Integer n = luaL_len(L, idx);

		if (n == 0)
			OPT_ERR(L, name, "empty list of flags");
		for (lua_Integer i = 1; i <= n; i++) {
			lua_geti(L, idx, i);
			if (lua_type(L, -1) != LUA_TSTRING)
				OPT_ERR(L, name, "list item %d is a %s, expected a flag name", (int)i,
					luaL_typename(L, -1));
			mask |= check_flags(L, -1, name);
			lua_pop(L, 1);
		}
		return mask;
	}
	return OPT_ERR(L, name, "expected flag names like {\"syn\",\"rst\"}, got %s", luaL_typename(L, idx));
}

/* ---- generic helpers ------------------------------------------------------ */

static lua_Integer check_int(lua_State *L, int idx, const char *name, lua_Integer lo, lua_Integer hi)
{
	lua_Integer v;

	if (!lua_isinteger(L, idx)) {
		if (lua_type(L, idx) == LUA_TNUMBER)
			OPT_ERR(L, name, "%s is not an integer", lua_tostring(L, idx));
		OPT_ERR(L, name, "expected an integer, got %s", luaL_typename(L, idx));
	}
	v = lua_tointeger(L, idx);
	if (v < lo || v > hi)
		OPT_ERR(L, name, "%I out of range %I-%I", v, lo, hi);
	return v;
}

static int check_family(lua_State *L, int idx, const char *name)
{
	if (lua_type(L, idx) == LUA_TSTRING) {
		const char *s = check_cstr(L, idx, name);

		if (!strcmp(s, "any"))
			return 0;
		if (!strcmp(s, "ipv4") || !strcmp(s, "inet") || !strcmp(s, "4"))
			return 4;
		if (!strcmp(s, "ipv6") || !strcmp(s, "inet6") || !strcmp(s, "6"))
			return 6;
		OPT_ERR(L, name, "'%s' is not one of \"ipv4\", \"ipv6\", \"any\"", s);
	}
	if (lua_isinteger(L, idx) && (lua_tointeger(L, idx) == 4 || lua_tointeger(L, idx) == 6))
		return (int)lua_tointeger(L, idx);
	return OPT_ERR(L, name, "expected \"ipv4\", \"ipv6\" or \"any\", got %s",
		       lua_tostring(L, idx) ? lua_tostring(L, idx) : luaL_typename(L, idx));
}

/* Raise on any key of table idx not in allowed[]. */
static void check_keys(lua_State *L, int idx, const char *ctx, const char *const allowed[])
{
	idx = lua_absindex(L, idx);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		const char *k;
		int ok = 0;

		lua_pop(L, 1);
		if (lua_type(L, -1) != LUA_TSTRING)
			ti_usage_error(L, NULL, "%s: keys must be option names, got a %s key", ctx,
				       luaL_typename(L, -1));
		k = lua_tostring(L, -1);
		for (int i = 0; allowed[i]; i++)
			ok |= !strcmp(k, allowed[i]);
		if (!ok) {
			/* the key's path: "bogus", "filter.dprot", "filter.len.maximum" */
			const char *sp = strstr(ctx, " key");
			const char *path =
				sp ? lua_pushfstring(L, "%s.%s", lua_pushlstring(L, ctx, (size_t)(sp - ctx)), k) : k;

			const char *hint = ti_push_suggestion(L, k, allowed);

			ti_usage_error(L, path, "unknown %s '%s'%s (known: %s)", ctx, k, hint,
				       ti_push_list(L, allowed));
		}
	}
}

/* ---- filter tables -------------------------------------------------------- */

const char *const ti_filter_keys[] = {
	"sport",   "dport", "port",   "saddr", "daddr", "host",	    "flags", "len",
	"ifindex", "dev",   "family", "expr",  "uid",	"sk_state", NULL,
};

void ti_check_filter(lua_State *L, int idx, struct ti_filter *f, const char *ctx, const char *netns_path)
{
	struct ti_config *c = &f->cfg;
	char name[64];

	idx = lua_absindex(L, idx);
	memset(f, 0, sizeof(*f));
	if (lua_isnoneornil(L, idx))
		return;
	if (!lua_istable(L, idx))
		OPT_ERR(L, ctx, "expected a table, got %s", luaL_typename(L, idx));
	snprintf(name, sizeof(name), "%s key", ctx);
	check_keys(L, idx, name, ti_filter_keys);

#define FIELD(key) (snprintf(name, sizeof(name), "%s.%s", ctx, key), lua_getfield(L, idx, key) != LUA_TNIL)
	if (FIELD("sport")) {
		check_ports(L, -1, name, c->sport_bits);
		c->match |= TI_M_SPORT;
	}
	lua_pop(L, 1);
	if (FIELD("dport")) {
		check_ports(L, -1, name, c->dport_bits);
		c->match |= TI_M_DPORT;
	}
	lua_pop(L, 1);
	if (FIELD("port")) {
		check_ports(L, -1, name, c->port_bits);
		c->match |= TI_M_PORT;
	}
	lua_pop(L, 1);
	if (FIELD("saddr")) {
		check_cidrs(L, -1, name, f->saddr, &f->nsaddr);
		c->match |= TI_M_SADDR;
	}
	lua_pop(L, 1);
	if (FIELD("daddr")) {
		check_cidrs(L, -1, name, f->daddr, &f->ndaddr);
		c->match |= TI_M_DADDR;
	}
	lua_pop(L, 1);
	if (FIELD("host")) {
		check_cidrs(L, -1, name, f->host, &f->nhost);
		c->match |= TI_M_HOST;
	}
	lua_pop(L, 1);
	if (FIELD("flags")) {
		c->flags_any = check_flags(L, -1, name);
		c->match |= TI_M_FLAGS;
	}
	lua_pop(L, 1);
	if (FIELD("len")) {
		c->match |= TI_M_LEN;
		if (lua_isinteger(L, -1)) {
			c->len_min = c->len_max = (uint32_t)check_int(L, -1, name, 0, TI_LEN_MAX);
		} else if (lua_istable(L, -1)) {
			static const char *const len_keys[] = { "min", "max", NULL };
			int t = lua_absindex(L, -1);

			check_keys(L, t, "filter.len key", len_keys);
			c->len_min = 0;
			c->len_max = TI_LEN_MAX;
			snprintf(name, sizeof(name), "%s.len.min", ctx);
			if (lua_getfield(L, t, "min") != LUA_TNIL)
				c->len_min = (uint32_t)check_int(L, -1, name, 0, TI_LEN_MAX);
			lua_pop(L, 1);
			snprintf(name, sizeof(name), "%s.len.max", ctx);
			if (lua_getfield(L, t, "max") != LUA_TNIL)
				c->len_max = (uint32_t)check_int(L, -1, name, 0, TI_LEN_MAX);
			lua_pop(L, 1);
			if (c->len_min > c->len_max)
				OPT_ERR(L, name, "min %I is greater than max %I", (lua_Integer)c->len_min,
					(lua_Integer)c->len_max);
		} else {
			OPT_ERR(L, name, "expected a length or {min=, max=}, got %s", luaL_typename(L, -1));
		}
	}
	lua_pop(L, 1);
	if (FIELD("ifindex")) {
		c->ifindex = (uint32_t)check_int(L, -1, name, 1, 0x7fffffff);
		c->match |= TI_M_IFINDEX;
	}
	lua_pop(L, 1);
	if (FIELD("dev")) {
		const char *dev;

		if (lua_type(L, -1) != LUA_TSTRING)
			OPT_ERR(L, name, "expected an interface name, got %s", luaL_typename(L, -1));
		dev = check_cstr(L, -1, name);
		if (c->match & TI_M_IFINDEX)
			OPT_ERR(L, name, "give either dev or ifindex, not both");
		c->ifindex = ti_netns_ifindex(netns_path, dev);
		if (!c->ifindex)
			OPT_ERR(L, name, "no interface named '%s' in %s", dev,
				netns_path && netns_path[0] ? "the session's network namespace"
							    : "this network namespace");
		c->match |= TI_M_IFINDEX;
	}
	lua_pop(L, 1);
	if (FIELD("family")) {
		int fam = check_family(L, -1, name);

		if (fam) {
			c->family = (uint32_t)fam;
			c->match |= TI_M_FAMILY;
		}
	}
	lua_pop(L, 1);
	if (FIELD("uid")) {
		c->uid = (uint32_t)check_int(L, -1, name, 0, 0xfffffffe);
		c->match |= TI_M_UID;
	}
	lua_pop(L, 1);
	if (FIELD("sk_state")) {
		int t = lua_absindex(L, -1), n = lua_istable(L, t) ? (int)lua_rawlen(L, t) : 1;

		if (!lua_istable(L, t) && lua_type(L, t) != LUA_TSTRING)
			OPT_ERR(L, name, "expected a TCP state name like 'LISTEN' or a list of them, got %s",
				luaL_typename(L, t));
		for (int i = 1; i <= n; i++) {
			const char *st;
			int v;

			if (lua_istable(L, t))
				lua_rawgeti(L, t, i);
			else
				lua_pushvalue(L, t);
			st = lua_tostring(L, -1);
			v = lua_type(L, -1) == LUA_TSTRING ? ti_sk_state_value(st) : -1;
			if (v < 0) {
				luaL_Buffer b;

				luaL_buffinit(L, &b);
				for (size_t k = 0; ti_sk_state_at(k); k++) {
					if (k)
						luaL_addstring(&b, ", ");
					luaL_addstring(&b, ti_sk_state_at(k));
				}
				luaL_pushresult(&b);
				OPT_ERR(L, name, "unknown TCP state %s (this kernel's: %s)",
					st && lua_type(L, -2) == LUA_TSTRING ? st : "(not a string)",
					lua_tostring(L, -1));
			}
			c->sk_states |= 1U << v;
			lua_pop(L, 1);
		}
		if (!n)
			OPT_ERR(L, name, "expected at least one TCP state");
		c->match |= TI_M_SK_STATE;
	}
	lua_pop(L, 1);
	if (FIELD("expr")) {
		char err[512];

		if (lua_type(L, -1) != LUA_TSTRING)
			OPT_ERR(L, name, "expected a filter expression string like 'tcp dst port 443', got %s",
				luaL_typename(L, -1));
		if (ti_expr_compile(check_cstr(L, -1, name), &c->expr, err, sizeof(err)))
			OPT_ERR(L, name, "%s", err);
	}
	lua_pop(L, 1);
#undef FIELD
}

/* The socket keys need the socket's fields, which sockets = true fills. */
void ti_check_filter_sockets(lua_State *L, const struct ti_filter *f, bool sockets)
{
	if (!sockets && (f->cfg.match & (TI_M_UID | TI_M_SK_STATE)))
		ti_usage_error(L, "sockets",
			       "filter.%s tests the receiving socket, which only a session opened with sockets = true "
			       "reads; open it with sockets = true",
			       f->cfg.match & TI_M_UID ? "uid" : "sk_state");
}

/* ---- open() options ------------------------------------------------------- */

const char *const ti_option_keys[] = {
	"mode",	     "family",	"filter", "sample",	  "events",    "aggregates", "ring_size",
	"max_flows", "wakeup",	"cgroup", "dev",	  "snaplen",   "netns",	     "container",
	"drops",     "sockets", "conns",  "idle_timeout", "max_conns", NULL,
};

static bool check_bool(lua_State *L, int idx, const char *name)
{
	if (!lua_isboolean(L, idx))
		OPT_ERR(L, name, "expected true or false, got %s", luaL_typename(L, idx));
	return lua_toboolean(L, idx);
}

/* aggregates: true (every map: drops' only with drops = true), false
 * (none), or a list of map names (ti_map_names); the bits of the maps
 * opened, 1 << enum ti_map_id. */
#define TI_AGG_ALL ((1u << TI_MAP_COUNT) - 1)
static uint32_t check_aggregates(lua_State *L, int idx, bool drops)
{
	uint32_t bits = 0;

	if (lua_isnil(L, idx) || (lua_isboolean(L, idx) && lua_toboolean(L, idx)))
		return drops ? TI_AGG_ALL : TI_AGG_ALL & ~(1u << TI_MAP_DROPS);
	if (lua_isboolean(L, idx))
		return 0;
	if (!lua_istable(L, idx))
		OPT_ERR(L, "aggregates", "expected true, false or a list of map names (%s), got %s",
			ti_push_list(L, ti_map_names), luaL_typename(L, idx));
	idx = lua_absindex(L, idx);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		const char *name;
		int m;

		if (!lua_isinteger(L, -2))
			OPT_ERR(L, "aggregates", "expected a list of map names (%s), got a %s key",
				ti_push_list(L, ti_map_names), luaL_typename(L, -2));
		if (lua_type(L, -1) != LUA_TSTRING)
			OPT_ERR(L, "aggregates", "expected map names (%s), got a %s", ti_push_list(L, ti_map_names),
				luaL_typename(L, -1));
		name = check_cstr(L, -1, "aggregates");
		for (m = 0; m < TI_MAP_COUNT && strcmp(ti_map_names[m], name); m++)
			;
		if (m == TI_MAP_COUNT)
			OPT_ERR(L, "aggregates", "unknown map '%s'%s (known: %s)", name,
				ti_push_suggestion(L, name, ti_map_names), ti_push_list(L, ti_map_names));
		if (m == TI_MAP_DROPS && !drops)
			OPT_ERR(L, "aggregates",
				"map 'drops' counts dropped segments, which only a session opened "
				"with drops = true sees; add drops = true");
		bits |= 1u << m;
		lua_pop(L, 1);
	}
	return bits;
}

/* A resolver's verdict: a mistake raises naming the option; an environment
 * failure is kept in o->scope for open() to return (check_options passes). */
static void scope_verdict(lua_State *L, struct ti_load_opts *o, const char *option, int err, const char *why)
{
	if (err == -EINVAL)
		OPT_ERR(L, option, "%s", why);
	if (err && !o->scope.err) {
		o->scope.err = err;
		snprintf(o->scope.why, sizeof(o->scope.why), "option '%s': %.280s", option, why);
	}
}

/* netns, container, cgroup: what the session sees (doc/modes.md, "Scoping
 * to a container"). */
static void check_scope(lua_State *L, int idx, struct ti_load_opts *o)
{
	char why[512];
	bool has_netns = lua_getfield(L, idx, "netns") != LUA_TNIL;
	bool has_container = lua_getfield(L, idx, "container") != LUA_TNIL;
	bool has_cgroup = lua_getfield(L, idx, "cgroup") != LUA_TNIL;
	int top = lua_gettop(L);

	if (has_container && has_netns)
		OPT_ERR(L, "container", "give either container (its netns and cgroup) or netns, not both");
	if (has_container && has_cgroup)
		OPT_ERR(L, "container", "give either container (its netns and cgroup) or cgroup, not both");
	if (has_netns) {
		int t = top - 2;

		if (lua_isinteger(L, t)) {
			lua_Integer ino = lua_tointeger(L, t);

			if (ino <= 0 || ino > 0xffffffffLL)
				OPT_ERR(L, "netns", "inode %I out of range 1-4294967295", ino);
			scope_verdict(L, o, "netns", ti_netns_resolve_inode((uint32_t)ino, &o->scope, why, sizeof(why)),
				      why);
		} else if (lua_type(L, t) == LUA_TSTRING) {
			const char *spec = check_cstr(L, t, "netns");

			scope_verdict(L, o, "netns", ti_netns_resolve(spec, &o->scope, why, sizeof(why)), why);
		} else {
			OPT_ERR(L, "netns",
				"expected a name from `ip netns list`, a path (/proc/PID/ns/net, /run/netns/NAME) or an inode number, got %s",
				lua_type(L, t) == LUA_TNUMBER ? "a non-integer number" : luaL_typename(L, t));
		}
	}
	if (has_container) {
		int t = top - 1;
		lua_Integer pid;

		if (!lua_isinteger(L, t))
			OPT_ERR(L, "container", "expected a process id (an integer), got %s",
				lua_type(L, t) == LUA_TNUMBER ? "a non-integer number" : luaL_typename(L, t));
		pid = lua_tointeger(L, t);
		if (pid <= 0 || pid > 0x3fffffff)
			OPT_ERR(L, "container", "process id %I out of range 1-%d", pid, 0x3fffffff);
		scope_verdict(L, o, "container",
			      ti_container_resolve((int)pid, &o->scope, o->cgroup, sizeof(o->cgroup), why, sizeof(why)),
			      why);
	}
	if (has_cgroup) {
		const char *path;

		if (lua_type(L, top) != LUA_TSTRING)
			OPT_ERR(L, "cgroup", "expected a cgroup v2 directory path, got %s", luaL_typename(L, top));
		path = check_cstr(L, top, "cgroup");
		if (lua_rawlen(L, top) >= sizeof(o->cgroup))
			OPT_ERR(L, "cgroup", "path too long");
		if (o->mode == TI_MODE_TC)
			OPT_ERR(L, "cgroup",
				"tc mode runs before the socket lookup and cannot tell a segment's cgroup; use mode='cgroup', 'fentry' or 'kprobe'");
		scope_verdict(L, o, "cgroup",
			      ti_cgroup_resolve(path, &o->scope, o->cgroup, sizeof(o->cgroup), why, sizeof(why)), why);
		if (!o->cgroup[0]) /* not resolved (an environment failure, kept) */
			strcpy(o->cgroup, path);
	}
	lua_settop(L, top - 3);
}

void ti_check_options(lua_State *L, int idx, struct ti_load_opts *o)
{
	long page = sysconf(_SC_PAGESIZE);

	idx = lua_absindex(L, idx);
	memset(o, 0, sizeof(*o));
	o->mode = TI_MODE_AUTO;
	o->sample = 1;
	o->events = true;
	o->aggregates = TI_AGG_ALL;
	o->ring_size = 1u << 22;
	o->max_flows = 16384;
	o->wakeup = 64;
	o->max_conns = 65536;
	o->idle_timeout_ms = 300000;
	if (lua_isnoneornil(L, idx))
		return;
	if (!lua_istable(L, idx))
		ti_usage_error(L, NULL, "open: expected an options table, got %s", luaL_typename(L, idx));
	check_keys(L, idx, "option", ti_option_keys);

	if (lua_getfield(L, idx, "mode") != LUA_TNIL) {
		const char *const *modes = ti_mode_names;
		const char *m;
		int i;

		if (lua_type(L, -1) != LUA_TSTRING)
			OPT_ERR(L, "mode", "expected a string, got %s", luaL_typename(L, -1));
		m = check_cstr(L, -1, "mode");
		for (i = 0; modes[i] && strcmp(modes[i], m); i++)
			;
		if (!modes[i]) /* the names: ti_mode_names, from TI_MODES */
			OPT_ERR(L, "mode", "'%s' is not one of %s%s", m, ti_push_list(L, modes),
				ti_push_suggestion(L, m, modes));
		o->mode = (enum ti_mode)i;
	}
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "family") != LUA_TNIL)
		o->family = check_family(L, -1, "family");
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "sample") != LUA_TNIL)
		o->sample = (uint32_t)check_int(L, -1, "sample", 1, 1 << 30);
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "events") != LUA_TNIL)
		o->events = check_bool(L, -1, "events");
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "drops") != LUA_TNIL)
		o->drops = check_bool(L, -1, "drops");
	lua_pop(L, 1);
	lua_getfield(L, idx, "aggregates");
	o->aggregates = check_aggregates(L, -1, o->drops);
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "sockets") != LUA_TNIL)
		o->sockets = check_bool(L, -1, "sockets");
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "conns") != LUA_TNIL)
		o->conns = check_bool(L, -1, "conns");
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "max_conns") != LUA_TNIL)
		o->max_conns = (uint32_t)check_int(L, -1, "max_conns", 1, TI_MAX_CONNS);
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "idle_timeout") != LUA_TNIL) {
		double v = 0;

		if (!lua_isnumber(L, -1) || (v = lua_tonumber(L, -1)) <= 0 || v > 86400 * 7)
			OPT_ERR(L, "idle_timeout", "expected seconds, more than 0 and at most a week, got %s",
				luaL_tolstring(L, -1, NULL));
		o->idle_timeout_ms = (uint64_t)(v * 1000 + 0.5);
		if (!o->idle_timeout_ms)
			o->idle_timeout_ms = 1;
	}
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "ring_size") != LUA_TNIL) {
		lua_Integer v = check_int(L, -1, "ring_size", 1, 1 << 30);

		if ((v & (v - 1)) || v % page)
			OPT_ERR(L, "ring_size", "%I is not a power of two multiple of the page size (%d)", v,
				(int)page);
		o->ring_size = (uint32_t)v;
	}
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "max_flows") != LUA_TNIL)
		o->max_flows = (uint32_t)check_int(L, -1, "max_flows", 1, TI_MAX_FLOWS);
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "wakeup") != LUA_TNIL)
		o->wakeup = (uint32_t)check_int(L, -1, "wakeup", 1, 1 << 20);
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "snaplen") != LUA_TNIL) {
		o->snaplen = (uint32_t)check_int(L, -1, "snaplen", 0, TI_SNAPLEN_MAX);
		if (ti_record_size(o->snaplen) > o->ring_size / 2)
			OPT_ERR(L, "snaplen",
				"%d: a record takes %d bytes of the ring, more than half of ring_size (%d)",
				(int)o->snaplen, (int)ti_record_size(o->snaplen), (int)o->ring_size);
	}
	lua_pop(L, 1);
	check_scope(L, idx, o);
	if (lua_getfield(L, idx, "dev") != LUA_TNIL) {
		int t = lua_absindex(L, -1);

		if (lua_type(L, t) == LUA_TSTRING) {
			lua_newtable(L);
			lua_pushvalue(L, t);
			lua_rawseti(L, -2, 1);
			lua_replace(L, t);
		}
		if (!lua_istable(L, t))
			OPT_ERR(L, "dev", "expected an interface name or a list, got %s", luaL_typename(L, t));
		for (lua_Integer i = 1; i <= luaL_len(L, t); i++) {
			lua_geti(L, t, i);
			if (lua_type(L, -1) != LUA_TSTRING)
				OPT_ERR(L, "dev", "list item %d is a %s, expected an interface name", (int)i,
					luaL_typename(L, -1));
			if (o->ndevs >= TI_MAX_DEVS)
				OPT_ERR(L, "dev", "more than %d interfaces", TI_MAX_DEVS);
			check_cstr(L, -1, "dev");
			if (lua_rawlen(L, -1) >= sizeof(o->devs[0]) ||
			    (!o->scope.err && !ti_netns_ifindex(o->scope.netns_path, lua_tostring(L, -1))))
				OPT_ERR(L, "dev", "no interface named '%s' in %s", lua_tostring(L, -1),
					o->scope.netns_path[0] ? "the session's network namespace"
							       : "this network namespace");
			strcpy(o->devs[o->ndevs++], lua_tostring(L, -1));
			lua_pop(L, 1);
		}
		if (o->ndevs == 0)
			OPT_ERR(L, "dev", "empty list of interfaces");
	}
	lua_pop(L, 1);
}
