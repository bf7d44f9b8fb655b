// SPDX-License-Identifier: GPL-2.0-only
/* spec/fuzz/fuzz_ports.c: libFuzzer target for ti_parse_ports() (luaext/parse.c).
 * Any input must return 0 or -1 with a NUL-terminated message, touch only
 * the 8192-byte bitmap, and, on success, set exactly the bits a simple
 * reference parse of the same string sets. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "parse.h"

/* Reference: comma-separated items "N" or "N-M", spaces around items. */
static int ref_parse(const char *s, uint8_t *bits)
{
	const char *p = s;

	for (;;) {
		long lo = 0, hi;
		int nd = 0;

		while (*p == ' ')
			p++;
		while (*p >= '0' && *p <= '9') {
			if (lo <= 65535)
				lo = lo * 10 + (*p - '0');
			p++, nd++;
		}
		if (!nd || lo > 65535)
			return -1;
		hi = lo;
		if (*p == '-') {
			p++;
			hi = 0, nd = 0;
			while (*p >= '0' && *p <= '9') {
				if (hi <= 65535)
					hi = hi * 10 + (*p - '0');
				p++, nd++;
			}
			if (!nd || hi > 65535 || hi < lo)
				return -1;
		}
		for (long v = lo; v <= hi; v++)
			bits[v >> 3] |= 1u << (v & 7);
		while (*p == ' ')
			p++;
		if (!*p)
			return 0;
		if (*p++ != ',')
			return -1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t bits[8192], ref[8192];
	char *s = malloc(size + 1);
	char err[256];
	int rc, rrc;

	memcpy(s, data, size);
	s[size] = '\0';
	memset(bits, 0, sizeof(bits));
	memset(ref, 0, sizeof(ref));
	memset(err, 'x', sizeof(err));
	rc = ti_parse_ports(s, bits, err, sizeof(err));
	if (rc != 0 && rc != -1)
		abort();
	if (rc && !memchr(err, '\0', sizeof(err)))
		abort(); /* message not terminated */
	rrc = ref_parse(s, ref);
	if (rc != rrc) {
		fprintf(stderr, "ti_parse_ports('%s') = %d, reference %d\n", s, rc, rrc);
		abort();
	}
	if (!rc && memcmp(bits, ref, sizeof(bits))) {
		fprintf(stderr, "ti_parse_ports('%s'): bits differ from the reference\n", s);
		abort();
	}
	free(s);
	return 0;
}
