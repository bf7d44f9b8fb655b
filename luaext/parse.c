// SPDX-License-Identifier: GPL-2.0-only
/* parse.c: the filter's plain-string parsers (parse.h): ports and port
 * ranges, addresses and CIDRs.  No Lua: options.c turns Lua values into
 * these strings and the errors into option errors, and the fuzz targets
 * (spec/fuzz/run: ports, cidr) link this file alone.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "parse.h"

/* ---- ports ------------------------------------------------------------- */

static int parse_port_num(const char **p, long *out)
{
	char *end;

	if (!isdigit((unsigned char)**p))
		return -1;
	errno = 0;
	*out = strtol(*p, &end, 10);
	if (errno || *out < 0 || *out > 65535)
		return -2;
	*p = end;
	return 0;
}

int ti_parse_ports(const char *spec, uint8_t *bits, char *err, size_t errlen)
{
	const char *p = spec;

	for (;;) {
		long lo, hi;
		int rc;

		while (*p == ' ')
			p++;
		rc = parse_port_num(&p, &lo);
		hi = lo;
		if (rc == 0 && *p == '-') {
			p++;
			rc = parse_port_num(&p, &hi);
		}
		if (rc == -2) {
			snprintf(err, errlen, "'%s': ports are 0-65535", spec);
			return -1;
		}
		if (rc < 0) {
			snprintf(err, errlen, "'%s' is not a port or a range like '8000-8100'", spec);
			return -1;
		}
		if (hi < lo) {
			snprintf(err, errlen, "'%s': range %ld-%ld is reversed", spec, lo, hi);
			return -1;
		}
		for (long v = lo; v <= hi; v++)
			bits[v >> 3] |= 1u << (v & 7);
		while (*p == ' ')
			p++;
		if (*p == '\0')
			return 0;
		if (*p != ',') {
			snprintf(err, errlen, "'%s' is not a port or a range like '8000-8100'", spec);
			return -1;
		}
		p++;
	}
}

/* ---- addresses ------------------------------------------------------------ */

int ti_parse_cidr(const char *spec, struct ti_cidr *out)
{
	char buf[INET6_ADDRSTRLEN + 8];
	char *slash;
	long plen = -1;

	if (strlen(spec) >= sizeof(buf))
		return -1;
	strcpy(buf, spec);
	slash = strchr(buf, '/');
	if (slash) {
		char *end;

		*slash = '\0';
		if (!isdigit((unsigned char)slash[1]))
			return -1;
		errno = 0;
		plen = strtol(slash + 1, &end, 10);
		if (errno || *end)
			return -1;
	}
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, out->addr) == 1) {
		out->family = 4;
		if (plen > 32)
			return -1;
		out->plen = plen < 0 ? 32 : plen;
	} else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
		out->family = 6;
		if (plen > 128)
			return -1;
		out->plen = plen < 0 ? 128 : plen;
	} else {
		return -1;
	}
	return 0;
}
