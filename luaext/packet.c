// SPDX-License-Identifier: GPL-2.0-only
/* packet.c: the tcpinspect.packet class.
 *
 * A session owns one reused packet *view*: each ring record is copied into
 * it before the callback runs, and it is marked invalid afterwards, so a
 * view kept past its callback raises a clear error instead of reading freed
 * ring memory.  p:copy() makes an independent packet that stays valid;
 * p:totable() builds a plain table.  Fields are converted only when read.
 */
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <net/if.h>
#include "ti.h"

/* a caplen is 16 bits: the kernel's records carry at most TI_SNAPLEN_MAX
 * bytes, a replayed capture's up to its snaplen */
#define VIEW_BYTES 65535

struct ti_packet {
	bool valid;
	bool view; /* the session's reused view (false for copies) */
	double rt_offset;
	struct ti_event e;
	uint8_t bytes[]; /* e.caplen captured bytes; the view has room for any (VIEW_BYTES) */
};

/* p.iplen, the IP header's length field as it would read with 32 bits:
 * IPv4's total length is the segment's length, IPv6's payload length is it
 * less the 40-byte header (BIG TCP and jumbograms too: struct ti_event's
 * wirelen). */
static lua_Integer iplen_of(const struct ti_event *e)
{
	if (e->family == 6)
		return e->wirelen >= 40 ? (lua_Integer)e->wirelen - 40 : 0;
	return e->wirelen;
}

static bool is_drop(const struct ti_event *e)
{
	return e->probe == TI_PROBE_KFREE_SKB;
}

/* p.reason: a drop's reason by the running kernel's name ("NO_SOCKET"),
 * its number when the kernel's BTF has no name for it; nil for a segment
 * that was not dropped. */
static void push_reason(lua_State *L, const struct ti_event *e)
{
	const char *name;

	if (!is_drop(e)) {
		lua_pushnil(L);
		return;
	}
	name = ti_drop_reason_name(e->reason);
	if (name)
		lua_pushstring(L, name);
	else
		lua_pushfstring(L, "%d", (int)e->reason);
}

/* p.location: the kernel function that dropped it (kallsyms); nil for a
 * segment that was not dropped. */
static void push_location(lua_State *L, const struct ti_event *e)
{
	char buf[128];

	if (!is_drop(e)) {
		lua_pushnil(L);
		return;
	}
	ti_kallsyms_name(e->location, buf, sizeof(buf));
	lua_pushstring(L, buf);
}

/* The receiving socket (sockets = true; bpf/tcpinspect.h): nil where the
 * hook named none.  p.sk_state by the running kernel's name for it. */
static void push_sk_state(lua_State *L, const struct ti_event *e)
{
	const char *name = e->sk_state ? ti_sk_state_name(e->sk_state) : NULL;

	if (name)
		lua_pushstring(L, name);
	else if (e->sk_state)
		lua_pushinteger(L, e->sk_state);
	else
		lua_pushnil(L);
}

static void push_sk_cookie(lua_State *L, const struct ti_event *e)
{
	if (e->sk_cookie)
		lua_pushinteger(L, (lua_Integer)e->sk_cookie);
	else
		lua_pushnil(L);
}

static void push_uid(lua_State *L, const struct ti_event *e)
{
	if (e->sk_flags & TI_SK_UID)
		lua_pushinteger(L, e->uid);
	else
		lua_pushnil(L);
}

/* p.pid, p.comm: the process holding the socket's inode (its listener's
 * for a request socket or a connection not yet accepted), found as ss -p
 * finds it (kernel_sockets.c); nil when no process holds it (an orphan, a
 * time-wait socket, a process gone). */
static void push_owner(lua_State *L, const struct ti_event *e, bool comm)
{
	const char *c;
	int pid;

	if (ti_sock_owner_of(e, &pid, &c))
		lua_pushnil(L);
	else if (comm)
		lua_pushstring(L, c);
	else
		lua_pushinteger(L, pid);
}

/* The fields of a packet, X(name, how to push it), in the order of the
 * reference docs (tcpinspect.packet_fields()).  In scope: L, p, e. */
#define PACKET_FIELDS(X)                                                                                  \
	X(ts, lua_pushinteger(L, e->ts > (uint64_t)LUA_MAXINTEGER ? LUA_MAXINTEGER : (lua_Integer)e->ts)) \
	X(time, lua_pushnumber(L, (double)e->ts / 1e9 + p->rt_offset))                                    \
	X(family, lua_pushinteger(L, e->family))                                                          \
	X(saddr, ti_push_addr(L, e->family, e->saddr))                                                    \
	X(daddr, ti_push_addr(L, e->family, e->daddr))                                                    \
	X(sport, lua_pushinteger(L, e->sport))                                                            \
	X(dport, lua_pushinteger(L, e->dport))                                                            \
	X(seq, lua_pushinteger(L, e->seq))                                                                \
	X(ack, lua_pushinteger(L, e->ack))                                                                \
	X(window, lua_pushinteger(L, e->window))                                                          \
	X(flags, lua_pushinteger(L, e->flags))                                                            \
	X(flagstr, ti_push_flagstr(L, e->flags))                                                          \
	X(len, lua_pushinteger(L, e->len))                                                                \
	X(iplen, lua_pushinteger(L, iplen_of(e)))                                                         \
	X(ttl, lua_pushinteger(L, e->ttl))                                                                \
	X(ifindex, lua_pushinteger(L, e->ifindex))                                                        \
	X(netns, lua_pushinteger(L, e->netns))                                                            \
	X(cgroup, lua_pushinteger(L, (lua_Integer)e->cgroup))                                             \
	X(probe, push_probe(L, e))                                                                        \
	X(cpu, lua_pushinteger(L, e->cpu))                                                                \
	X(caplen, lua_pushinteger(L, e->caplen))                                                          \
	X(wirelen, lua_pushinteger(L, e->wirelen))                                                        \
	X(reason, push_reason(L, e))                                                                      \
	X(location, push_location(L, e))                                                                  \
	X(sk_state, push_sk_state(L, e))                                                                  \
	X(sk_cookie, push_sk_cookie(L, e))                                                                \
	X(uid, push_uid(L, e))                                                                            \
	X(pid, push_owner(L, e, false))                                                                   \
	X(comm, push_owner(L, e, true))

enum packet_field {
#define TI_X(name, push) F_##name,
	PACKET_FIELDS(TI_X)
#undef TI_X
		F_COUNT,
};

static const char *const fields[F_COUNT + 1] = {
#define TI_X(name, push) #name,
	PACKET_FIELDS(TI_X)
#undef TI_X
		NULL,
};

/* what p.NAME can be: the fields, then the methods (for suggestions) */
static const char *const field_and_method_names[F_COUNT + 4] = {
#define TI_X(name, push) #name,
	PACKET_FIELDS(TI_X)
#undef TI_X
		"copy",
	"totable",
	"bytes",
	NULL,
};

const char *const ti_probe_names[TI_PROBE_COUNT + 1] = {
#define TI_X(id, name) name,
	TI_PROBES(TI_X)
#undef TI_X
		NULL,
};

static const char *probe_name(unsigned probe)
{
	return ti_probe_names[probe < TI_PROBE_COUNT ? probe : TI_PROBE_NONE];
}

void ti_push_addr(lua_State *L, int family, const uint8_t *addr)
{
	char buf[INET6_ADDRSTRLEN];

	if (!inet_ntop(family == 6 ? AF_INET6 : AF_INET, addr, buf, sizeof(buf)))
		buf[0] = '\0';
	lua_pushstring(L, buf);
}

/* tcpdump's flag letters in tcpdump's order (bit order: "S.", "F.", "P.",
 * ".U"); "none" if empty. */
void ti_push_flagstr(lua_State *L, unsigned flags)
{
	static const struct {
		unsigned bit;
		char c;
	} letters[] = {
#define TI_X(id, bit, name, letter) { bit, letter },
		TI_TCP_FLAGS(TI_X)
#undef TI_X
	};
	char buf[16];
	size_t n = 0;

	for (size_t i = 0; i < sizeof(letters) / sizeof(letters[0]); i++)
		if (flags & letters[i].bit)
			buf[n++] = letters[i].c;
	if (n == 0) {
		lua_pushliteral(L, "none");
		return;
	}
	lua_pushlstring(L, buf, n);
}

/* The interfaces of tc sessions attached in another network namespace
 * (netns=, container=, or every namespace): if_indextoname here would name
 * another device, or none.  Sessions note them as they attach (session.c). */
#define DEV_NOTES 256 /* TI_MAX_HOOKS: one session over every namespace fits */
static struct {
	uint32_t netns, ifindex;
	char name[IF_NAMESIZE];
} dev_notes[DEV_NOTES];
static unsigned dev_next;

void ti_packet_note_dev(uint32_t netns, uint32_t ifindex, const char *name)
{
	unsigned i;

	for (i = 0; i < DEV_NOTES; i++)
		if (dev_notes[i].netns == netns && dev_notes[i].ifindex == ifindex)
			break;
	if (i == DEV_NOTES)
		i = dev_next++ % DEV_NOTES;
	dev_notes[i].netns = netns;
	dev_notes[i].ifindex = ifindex;
	snprintf(dev_notes[i].name, sizeof(dev_notes[i].name), "%s", name);
}

/* "tc/ingress:DEV": if_indextoname costs a netlink round trip (~9 us), so
 * the names of recently seen interfaces are kept, for one second. */
static void push_probe(lua_State *L, const struct ti_event *e)
{
	static __thread struct {
		uint32_t ifindex;
		double at;
		char name[IF_NAMESIZE];
	} cache[16];
	static uint32_t here; /* this process's netns */
	unsigned slot = e->ifindex & 15;
	double now;

	if (e->probe != TI_PROBE_TC) {
		lua_pushstring(L, probe_name(e->probe));
		return;
	}
	if (!here)
		here = ti_netns_inode();
	if (e->netns && e->netns != here) {
		for (unsigned i = 0; i < DEV_NOTES; i++) {
			if (dev_notes[i].netns == e->netns && dev_notes[i].ifindex == e->ifindex) {
				lua_pushfstring(L, "%s:%s", ti_probe_names[TI_PROBE_TC], dev_notes[i].name);
				return;
			}
		}
		lua_pushstring(L, probe_name(e->probe)); /* a name we cannot know */
		return;
	}
	now = ti_now_monotonic();
	if (cache[slot].ifindex != e->ifindex || now - cache[slot].at > 1.0) {
		if (!if_indextoname(e->ifindex, cache[slot].name)) {
			lua_pushstring(L, probe_name(e->probe));
			return;
		}
		cache[slot].ifindex = e->ifindex;
		cache[slot].at = now;
	}
	lua_pushfstring(L, "%s:%s", ti_probe_names[TI_PROBE_TC], cache[slot].name);
}

/* Push field i (enum packet_field) of p. */
static void push_field(lua_State *L, const struct ti_packet *p, int i)
{
	const struct ti_event *e = &p->e;

	switch (i) {
#define TI_X(name, push) \
	case F_##name: push; break;
		PACKET_FIELDS(TI_X)
#undef TI_X
	default: lua_pushnil(L);
	}
}

static struct ti_packet *check_packet(lua_State *L, int idx)
{
	struct ti_packet *p = luaL_checkudata(L, idx, TI_PACKET_MT);

	if (!p->valid)
		luaL_error(L, "packet view used outside its callback: keep p:copy() or p:totable() instead");
	return p;
}

/* p.NAME: upvalue 1 maps field names to their index and method names to
 * the methods (one table lookup: callbacks read fields for every event).
 * Only Lua's own __index dispatch calls it (the metatable is hidden behind
 * __metatable), so argument 1 is a packet: no luaL_checkudata per read. */
static int packet_index(lua_State *L)
{
	struct ti_packet *p = lua_touserdata(L, 1);

	if (!p->valid)
		return luaL_error(L, "packet view used outside its callback: keep p:copy() or p:totable() instead");

	lua_settop(L, 2);
	lua_pushvalue(L, 2);
	switch (lua_rawget(L, lua_upvalueindex(1))) {
	case LUA_TNUMBER: push_field(L, p, (int)lua_tointeger(L, 3)); return 1;
	case LUA_TFUNCTION: return 1;
	default:
		if (lua_type(L, 2) == LUA_TSTRING)
			return luaL_error(L, "tcpinspect: packet has no field '%s'%s", lua_tostring(L, 2),
					  ti_push_suggestion(L, lua_tostring(L, 2), field_and_method_names));
		return luaL_error(L, "tcpinspect: packet has no field '%s'", luaL_tolstring(L, 2, NULL));
	}
}

static int packet_copy(lua_State *L)
{
	struct ti_packet *p = check_packet(L, 1);

	return ti_packet_push_record(L, &p->e, sizeof(p->e) + p->e.caplen, p->rt_offset);
}

/* p:bytes(): the captured bytes (snaplen), from the IP header on */
static int packet_bytes(lua_State *L)
{
	struct ti_packet *p = check_packet(L, 1);

	lua_pushlstring(L, (const char *)p->bytes, p->e.caplen);
	return 1;
}

static int packet_totable(lua_State *L)
{
	struct ti_packet *p = check_packet(L, 1);

	lua_createtable(L, 0, F_COUNT);
	for (int i = 0; fields[i]; i++) {
		push_field(L, p, i);
		lua_setfield(L, -2, fields[i]);
	}
	return 1;
}

static int packet_tostring(lua_State *L)
{
	struct ti_packet *p = luaL_checkudata(L, 1, TI_PACKET_MT);

	if (!p->valid) {
		lua_pushliteral(L, "tcpinspect.packet (expired view)");
		return 1;
	}
	push_field(L, p, F_saddr);
	push_field(L, p, F_daddr);
	push_field(L, p, F_flagstr);
	lua_pushfstring(L, "tcpinspect.packet %s.%d > %s.%d [%s] len %d", lua_tostring(L, -3), (int)p->e.sport,
			lua_tostring(L, -2), (int)p->e.dport, lua_tostring(L, -1), (int)p->e.len);
	return 1;
}

static int packet_fields(lua_State *L)
{
	lua_createtable(L, F_COUNT, 0);
	for (int i = 0; fields[i]; i++) {
		lua_pushstring(L, fields[i]);
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

/* Test hook: decode raw record bytes (a string of sizeof(struct ti_event))
 * into a packet, as the ring callback does.  Used by unit specs and fuzzing. */
static int packet_decode(lua_State *L)
{
	size_t n;
	const char *raw = luaL_checklstring(L, 1, &n);
	struct ti_event e;

	if (n < sizeof(e))
		return luaL_error(L, "record is %d bytes, expected %d and its caplen bytes", (int)n, (int)sizeof(e));
	memcpy(&e, raw, sizeof(e));
	if (n != sizeof(e) + e.caplen)
		return luaL_error(L, "record is %d bytes, expected %d and its caplen (%d) bytes", (int)n,
				  (int)sizeof(e), (int)e.caplen);
	return ti_packet_push_record(L, raw, n, luaL_optnumber(L, 2, 0));
}

static struct ti_packet *new_packet(lua_State *L, size_t nbytes)
{
	struct ti_packet *p = lua_newuserdatauv(L, sizeof(*p) + nbytes, 0);

	memset(p, 0, sizeof(*p));
	luaL_setmetatable(L, TI_PACKET_MT);
	return p;
}

struct ti_packet *ti_packet_new_view(lua_State *L)
{
	struct ti_packet *p = new_packet(L, VIEW_BYTES);

	p->view = true;
	return p;
}

int ti_packet_set_record(struct ti_packet *p, const void *data, size_t size)
{
	const struct ti_event *e = data;

	if (size == TI_EVENT_COMPACT) {
		/* the compact record (bpf/tcpinspect.h): its tail is 0 */
		memcpy(&p->e, data, TI_EVENT_COMPACT);
		memset((char *)&p->e + TI_EVENT_COMPACT, 0, sizeof(*e) - TI_EVENT_COMPACT);
		return 0;
	}
	if (size < sizeof(*e) || size < sizeof(*e) + e->caplen)
		return -1;
	memcpy(&p->e, data, sizeof(*e) + e->caplen);
	return 0;
}

struct ti_event *ti_packet_event(struct ti_packet *p)
{
	return &p->e;
}

void ti_packet_set_valid(struct ti_packet *p, bool valid, double rt_offset)
{
	p->valid = valid;
	p->rt_offset = rt_offset;
}

void ti_packet_push_field(lua_State *L, const struct ti_packet *p, int field)
{
	push_field(L, p, field);
}

/* The index of a packet field, or -1. */
int ti_packet_field_index(const char *name)
{
	for (int i = 0; fields[i]; i++)
		if (!strcmp(fields[i], name))
			return i;
	return -1;
}

int ti_packet_push_record(lua_State *L, const void *data, size_t size, double rt_offset)
{
	const struct ti_event *e = data;
	size_t caplen = size > sizeof(*e) ? size - sizeof(*e) : 0;
	struct ti_packet *p = new_packet(L, caplen);

	memcpy(&p->e, data, sizeof(*e) + caplen);
	p->e.caplen = (uint16_t)caplen;
	p->valid = true;
	p->rt_offset = rt_offset;
	return 1;
}

void ti_packet_register(lua_State *L)
{
	static const luaL_Reg meta[] = {
		{ "__tostring", packet_tostring },
		{ NULL, NULL },
	};
	static const luaL_Reg methods[] = {
		{ "copy", packet_copy },
		{ "totable", packet_totable },
		{ "bytes", packet_bytes },
		{ NULL, NULL },
	};
	static const luaL_Reg funcs[] = {
		{ "packet_fields", packet_fields },
		{ "decode_record", packet_decode },
		{ NULL, NULL },
	};

	luaL_newmetatable(L, TI_PACKET_MT);
	luaL_setfuncs(L, meta, 0);
	lua_pushliteral(L, TI_PACKET_MT); /* getmetatable(p): the name, not the table */
	lua_setfield(L, -2, "__metatable");
	luaL_newlib(L, methods); /* name -> method, then name -> field index */
	for (int i = 0; fields[i]; i++) {
		lua_pushinteger(L, i);
		lua_setfield(L, -2, fields[i]);
	}
	lua_pushcclosure(L, packet_index, 1);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
	luaL_setfuncs(L, funcs, 0); /* into the module table at the top */
	lua_pushinteger(L, sizeof(struct ti_event));
	lua_setfield(L, -2, "record_size");
}
