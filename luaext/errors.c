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

	lua_createtable(L, 0, 3);
	lua_pushvalue(L, -2);
	lua_setfield(L, -2, "reason");
	if (option) {
		lua_pushstring(L, option);
		lua_setfield(L, -2, "option");
	}
	if (named && option)
		lua_pushfstring(L, "tcpinspect: option '%s': %s", option, reason);
	else
		lua_pushfstring(L, "tcpinspect: %s", reason);
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
