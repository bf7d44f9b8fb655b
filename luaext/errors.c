// SPDX-License-Identifier: GPL-2.0-only
/* errors.c: the two kinds of error of tcpinspect.core.
 *
 * Environment failures return the fail tuple
 *	nil, "ENAME: what happened; what to do", errno
 * with the errno's real name (strerrorname_np).
 *
 * Programmer mistakes in options raise an error object of the metatable
 * "tcpinspect.error": a table { option = "filter.dport", reason = "...",
 * message = "tcpinspect: option 'filter.dport': ..." } whose tostring is the
 * message, so that callers (the CLI) can attribute it to an option without
 * matching text, while printing it still reads as a plain message.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "ti.h"

const char *ti_errname(int err)
{
	static __thread char buf[16];
	const char *name;

	if (err < 0)
		err = -err;
	if (err == 524) /* the kernel's internal ENOTSUPP, which libc does not name */
		return "ENOTSUPP";
	name = strerrorname_np(err);
	if (name)
		return name;
	snprintf(buf, sizeof(buf), "E%d", err);
	return buf;
}

/* Push nil, "ENAME: <message>", errno; return 3. */
int ti_fail(lua_State *L, int err, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	if (err < 0)
		err = -err;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	lua_pushnil(L);
	lua_pushfstring(L, "%s: %s", ti_errname(err), msg);
	lua_pushinteger(L, err);
	return 3;
}

static int raise_error(lua_State *L, const char *option, bool named, const char *fmt, va_list ap)
{
	const char *reason = lua_pushvfstring(L, fmt, ap);
	const char *where;

	/* the caller's position: level 1 is whoever called the C function that
	 * checks options (open, check_options, set_filter); none under pcall */
	luaL_where(L, 1);
	where = lua_tostring(L, -1);
	lua_insert(L, -2);

	lua_createtable(L, 0, 3);
	lua_pushvalue(L, -2);
	lua_setfield(L, -2, "reason");
	if (option) {
		lua_pushstring(L, option);
		lua_setfield(L, -2, "option");
	}
	if (named && option)
		lua_pushfstring(L, "%stcpinspect: option '%s': %s", where, option, reason);
	else
		lua_pushfstring(L, "%stcpinspect: %s", where, reason);
	lua_setfield(L, -2, "message");
	luaL_setmetatable(L, TI_ERROR_MT);
	return lua_error(L);
}

/* Raise a tcpinspect.error about option (the option's path, "filter.dport"):
 * "tcpinspect: option 'NAME': REASON".  Does not return. */
int ti_option_error(lua_State *L, const char *option, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	return raise_error(L, option, true, fmt, ap);
}

/* The same, for a message that names the option itself ("tcpinspect:
 * unknown option 'x' (known: ...)"); option may be NULL. */
int ti_usage_error(lua_State *L, const char *option, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	return raise_error(L, option, false, fmt, ap);
}

/* Push "a, b, c" for a NULL-terminated list of names; return it. */
const char *ti_push_list(lua_State *L, const char *const names[])
{
	luaL_Buffer b;

	luaL_buffinit(L, &b);
	for (int i = 0; names[i]; i++) {
		luaL_addstring(&b, i ? ", " : "");
		luaL_addstring(&b, names[i]);
	}
	luaL_pushresult(&b);
	return lua_tostring(L, -1);
}

/* Optimal string alignment distance (Levenshtein plus adjacent
 * transpositions, so "dprot" is 1 from "dport"), for names up to 63 bytes. */
static int edit_distance(const char *a, const char *b)
{
	int la = (int)strlen(a), lb = (int)strlen(b);
	int d[64][64];

	if (la > 63 || lb > 63)
		return 64;
	for (int i = 0; i <= la; i++)
		d[i][0] = i;
	for (int j = 0; j <= lb; j++)
		d[0][j] = j;
	for (int i = 1; i <= la; i++) {
		for (int j = 1; j <= lb; j++) {
			int cost = a[i - 1] != b[j - 1];
			int v = d[i - 1][j] + 1;

			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < v)
				v = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	}
	return d[la][lb];
}

/* The name of names[] closest to name, if close enough to be a typo (at
 * most 1 edit for names of up to 4 characters, 2 for longer ones, and
 * fewer edits than the name has characters), else NULL.  Ties: the first. */
const char *ti_suggest(const char *name, const char *const names[])
{
	int len = (int)strlen(name), max = len <= 4 ? 1 : 2, best = max + 1;
	const char *found = NULL;

	for (int i = 0; names[i]; i++) {
		int dist = edit_distance(name, names[i]);

		if (dist < best && dist < len) {
			best = dist;
			found = names[i];
		}
	}
	return found;
}

/* Push " (did you mean 'x'?)" or "" for name against names[]; return it. */
const char *ti_push_suggestion(lua_State *L, const char *name, const char *const names[])
{
	const char *s = ti_suggest(name, names);

	if (s)
		return lua_pushfstring(L, "; did you mean '%s'?", s);
	lua_pushliteral(L, "");
	return "";
}

static int error_tostring(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_getfield(L, 1, "message");
	return 1;
}

void ti_error_register(lua_State *L)
{
	luaL_newmetatable(L, TI_ERROR_MT);
	lua_pushcfunction(L, error_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pop(L, 1);
}
