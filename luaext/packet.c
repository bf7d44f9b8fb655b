// SPDX-License-Identifier: GPL-2.0-only
/* packet.c: the tcpinspect.packet class.
 *
 * A session owns one reused packet *view*: each ring record is copied into
 * it before the callback runs, and it is marked invalid afterwards, so a
 * view kept past its callback raises a clear error instead of reading freed
 * ring memory.  p:copy() makes an independent packet that stays valid;
 * p:totable() builds a plain table.  Fields are converted only when read.
 */
#include <math.h>
#include <stdio.h>
#include <time.h>
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
	X(comm, push_owner(L, e, true))                                                                   \
	X(line, push_line(L, p))

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

/* ---- the tcpdump line (p.line, core.segment_line, format.segment) -------- */

/* tcpdump's flag letters into buf (at least 9 bytes), "none" if empty; its
 * length */
static size_t flagstr_into(char *buf, unsigned flags)
{
	char *p = buf;

	/* a test per flag, written out (a loop over a table of them was a
	 * tenth of building the line: perf, spec/bench/watch_line.lua) */
#define TI_X(id, bit, name, letter) \
	if (flags & (bit))          \
		*p++ = (letter);
	TI_TCP_FLAGS(TI_X)
#undef TI_X
	if (p == buf) {
		memcpy(buf, "none", 4);
		return 4;
	}
	return (size_t)(p - buf);
}

/* tcpdump's flag letters in tcpdump's order (bit order: "S.", "F.", "P.",
 * ".U"); "none" if empty. */
void ti_push_flagstr(lua_State *L, unsigned flags)
{
	char buf[16];

	lua_pushlstring(L, buf, flagstr_into(buf, flags));
}

/* v in decimal at p (as Lua's "%d"); past the last digit.  Two digits per
 * step from a table: the line has five or six numbers, and this was the
 * largest part of building it (perf, spec/bench/watch_line.lua). */
static const char digit_pairs[201] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
				     "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
				     "8081828384858687888990919293949596979899";

static char *put_int(char *p, long long v)
{
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	char tmp[24], *end = tmp + sizeof(tmp), *q = end;

	while (u >= 100) {
		unsigned d = (unsigned)(u % 100) * 2;

		u /= 100;
		*--q = digit_pairs[d + 1];
		*--q = digit_pairs[d];
	}
	if (u >= 10) {
		*--q = digit_pairs[u * 2 + 1];
		*--q = digit_pairs[u * 2];
	} else {
		*--q = (char)('0' + u);
	}
	if (v < 0)
		*p++ = '-';
	memcpy(p, q, (size_t)(end - q));
	return p + (end - q);
}

static char *put_str(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

#define PUT_LIT(p, lit) put_str(p, lit, sizeof(lit) - 1)

/* "a.b.c.d" at p (inet_ntop's text without its sprintf); past it */
static char *put_ipv4(char *p, const uint8_t *a)
{
	for (int i = 0; i < 4; i++) {
		unsigned v = a[i];

		if (i)
			*p++ = '.';
		if (v >= 100)
			*p++ = (char)('0' + v / 100);
		if (v >= 10)
			*p++ = (char)('0' + v / 10 % 10);
		*p++ = (char)('0' + v % 10);
	}
	return p;
}

/* An IPv6 address as glibc's inet_ntop writes it (RFC 5952: lowercase hex
 * without leading zeros, the first longest run of 2 or more zero groups as
 * "::", "::a.b.c.d" and "::ffff:a.b.c.d" for the IPv4-compatible and
 * -mapped forms), without its sprintf per group (spec/75 compares the two
 * on random addresses); past it */
static char *put_ipv6(char *p, const uint8_t *a)
{
	static const char hex[] = "0123456789abcdef";
	unsigned w[8];
	int best = -1, best_len = 0, cur = -1, cur_len = 0;

	for (int i = 0; i < 8; i++) {
		w[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
		if (w[i] == 0) {
			if (cur < 0)
				cur = i, cur_len = 0;
			if (++cur_len > best_len)
				best = cur, best_len = cur_len;
		} else {
			cur = -1;
		}
	}
	if (best_len < 2)
		best = -1;
	for (int i = 0; i < 8; i++) {
		if (best >= 0 && i >= best && i < best + best_len) {
			if (i == best)
				*p++ = ':';
			continue;
		}
		if (i)
			*p++ = ':';
		if (i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)))
			return put_ipv4(p, a + 12);
		for (int sh = 12, started = 0; sh >= 0; sh -= 4) {
			unsigned d = w[i] >> sh & 15;

			if (d || started || sh == 0) {
				*p++ = hex[d];
				started = 1;
			}
		}
	}
	if (best >= 0 && best + best_len == 8)
		*p++ = ':';
	return p;
}

/* An address's text (inet_ntop's) into buf (INET6_ADDRSTRLEN); its length */
static size_t addr_into(char *buf, int family, const uint8_t *addr)
{
	return (size_t)((family == 6 ? put_ipv6(buf, addr) : put_ipv4(buf, addr)) - buf);
}

/* "HH:MM:SS.uuuuuu" (local time) of t, seconds since the epoch, at p: the
 * microseconds rounded, the second's text kept from the last call (as
 * localtime costs most of it); past it */
static char *put_clock(char *p, double t)
{
	/* initial-exec: a load, not a __tls_get_addr call per line (16 bytes
	 * of the static TLS that glibc keeps for modules loaded later) */
	static __thread __attribute__((tls_model("initial-exec"))) double last_sec = -1.0 / 0.0;
	static __thread __attribute__((tls_model("initial-exec"))) char hms[8];
	double sec;
	long usec;

	/* a time that is no number (NaN, inf) or past what time_t and long
	 * hold (a hostile capture's): no digits of it, and no cast of it */
	if (!(t > -1e15 && t < 1e15))
		return PUT_LIT(p, "??:??:??.000000");
	/* floor: a truncation for the times there are (after 1970), libm's
	 * call only before */
	sec = t >= 0 ? (double)(long long)t : floor(t);
	usec = (long)((t - sec) * 1e6 + 0.5); /* >= 0.5: the cast is floor */
	if (usec >= 1000000) {
		sec += 1;
		usec -= 1000000;
	}
	if (sec != last_sec) {
		time_t tt = (time_t)sec;
		struct tm tm;

		if (localtime_r(&tt, &tm)) {
			hms[0] = (char)('0' + tm.tm_hour / 10);
			hms[1] = (char)('0' + tm.tm_hour % 10);
			hms[2] = ':';
			hms[3] = (char)('0' + tm.tm_min / 10);
			hms[4] = (char)('0' + tm.tm_min % 10);
			hms[5] = ':';
			hms[6] = (char)('0' + tm.tm_sec / 10);
			hms[7] = (char)('0' + tm.tm_sec % 10);
		} else {
			memcpy(hms, "??:??:??", 8);
		}
		last_sec = sec;
	}
	p = put_str(p, hms, 8);
	*p++ = '.';
	for (int i = 4; i >= 0; i -= 2) { /* two digits a step */
		memcpy(p + i, digit_pairs + usec % 100 * 2, 2);
		usec /= 100;
	}
	return p + 6;
}

/* The one definition of the tcpdump line (tcpdump -S -n; format.packet's,
 * tcpinspect watch's):
 *   15:04:05.123456 IP 127.0.0.1.41234 > 127.0.0.1.22: Flags [S.], seq 123, ack 456, win 65483, length 0
 * "seq A:B" with payload, "ack" only with ACK.  buf has room for
 * TI_LINE_FIXED bytes and the three strings; returns the length. */
#define TI_LINE_FIXED 224
static size_t segment_line(char *buf, double time, int family, const char *saddr, size_t saddr_len, lua_Integer sport,
			   const char *daddr, size_t daddr_len, lua_Integer dport, lua_Integer flags, lua_Integer seq,
			   lua_Integer ack, lua_Integer window, lua_Integer len, const char *flagstr,
			   size_t flagstr_len)
{
	char *p = put_clock(buf, time);

	p = family == 6 ? PUT_LIT(p, " IP6 ") : PUT_LIT(p, " IP ");
	p = put_str(p, saddr, saddr_len);
	*p++ = '.';
	p = put_int(p, sport);
	p = PUT_LIT(p, " > ");
	p = put_str(p, daddr, daddr_len);
	*p++ = '.';
	p = put_int(p, dport);
	p = PUT_LIT(p, ": Flags [");
	p = put_str(p, flagstr, flagstr_len);
	p = PUT_LIT(p, "], seq ");
	p = put_int(p, seq);
	if (len > 0) {
		*p++ = ':';
		p = put_int(p, (seq + len) & 0xffffffff);
	}
	if (flags & 16) {
		p = PUT_LIT(p, ", ack ");
		p = put_int(p, ack);
	}
	p = PUT_LIT(p, ", win ");
	p = put_int(p, window);
	p = PUT_LIT(p, ", length ");
	p = put_int(p, len);
	return (size_t)(p - buf);
}

/* p.line into buf, TI_PACKET_LINE_MAX bytes of room: its length (no
 * newline, no NUL).  push_line's and on_packet(file)'s (session.c). */
size_t ti_packet_line(const struct ti_packet *p, char *buf)
{
	const struct ti_event *e = &p->e;
	char sa[INET6_ADDRSTRLEN], da[INET6_ADDRSTRLEN], fs[16];
	size_t san = addr_into(sa, e->family, e->saddr), dan = addr_into(da, e->family, e->daddr);
	size_t fsn = flagstr_into(fs, e->flags);

	return segment_line(buf, (double)e->ts / 1e9 + p->rt_offset, e->family, sa, san, e->sport, da, dan, e->dport,
			    e->flags, e->seq, e->ack, e->window, e->len, fs, fsn);
}

_Static_assert(TI_PACKET_LINE_MAX >= TI_LINE_FIXED + 2 * INET6_ADDRSTRLEN + 16, "room for segment_line");

/* p.line */
static void push_line(lua_State *L, const struct ti_packet *p)
{
	char buf[TI_PACKET_LINE_MAX];

	lua_pushlstring(L, buf, ti_packet_line(p, buf));
}

/* core.clock(t) -> "15:04:05.123456": the line's clock (format.clock) */
static int packet_clock(lua_State *L)
{
	char buf[16];

	lua_pushlstring(L, buf, (size_t)(put_clock(buf, luaL_checknumber(L, 1)) - buf));
	return 1;
}

/* core.segment_line(time, family, saddr, sport, daddr, dport, flags, seq,
 * ack, window, len [, flagstr]) -> string: p.line from the values (a copy's
 * or a plain table's; format.segment) */
static int packet_segment_line(lua_State *L)
{
	size_t san, dan, fsn;
	double time = luaL_checknumber(L, 1);
	int family = (int)luaL_checkinteger(L, 2);
	const char *sa = luaL_checklstring(L, 3, &san);
	lua_Integer sport = luaL_checkinteger(L, 4);
	const char *da = luaL_checklstring(L, 5, &dan);
	lua_Integer dport = luaL_checkinteger(L, 6);
	lua_Integer flags = luaL_checkinteger(L, 7);
	lua_Integer seq = luaL_checkinteger(L, 8);
	lua_Integer ack = flags & 16 ? luaL_checkinteger(L, 9) : 0;
	lua_Integer window = luaL_checkinteger(L, 10);
	lua_Integer len = luaL_checkinteger(L, 11);
	char fbuf[16];
	const char *fs;
	luaL_Buffer b;
	char *out;

	if (lua_isnoneornil(L, 12)) {
		fsn = flagstr_into(fbuf, (unsigned)flags);
		fs = fbuf;
	} else {
		fs = luaL_checklstring(L, 12, &fsn);
	}
	out = luaL_buffinitsize(L, &b, TI_LINE_FIXED + san + dan + fsn);
	luaL_pushresultsize(&b, segment_line(out, time, family, sa, san, sport, da, dan, dport, flags, seq, ack, window,
					     len, fs, fsn));
	return 1;
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

	if (size != TI_EVENT_COMPACT && (size < sizeof(*e) || size < sizeof(*e) + e->caplen))
		return -1;
	ti_event_copy(&p->e, data, size, sizeof(*e) + e->caplen);
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
		{ "segment_line", packet_segment_line },
		{ "clock", packet_clock },
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
