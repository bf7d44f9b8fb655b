/* errors.c: the fail tuple for environment failures,
 *   nil, "ENAME: what happened; what to do", errno
 * Programmer mistakes do not come here: they raise (luaL_error) and name the
 * option at fault (options.c). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "ti.h"

const char *ti_errname(int err)
{
	switch (err) {
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case EINVAL: return "EINVAL";
	case ENOMEM: return "ENOMEM";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case ENODEV: return "ENODEV";
	case E2BIG: return "E2BIG";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case 524: return "ENOTSUPP";
	case ENOSYS: return "ENOSYS";
	case EINTR: return "EINTR";
	case ENOSPC: return "ENOSPC";
	default: return "EFAIL";
	}
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
