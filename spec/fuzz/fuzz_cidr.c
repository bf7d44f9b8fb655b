// SPDX-License-Identifier: GPL-2.0-only
/* spec/fuzz/fuzz_cidr.c: libFuzzer target for ti_parse_cidr() (luaext/parse.c).
 * Any input must return 0 or -1; on success the family is 4 or 6, the prefix
 * fits the family, and printing the address and parsing it again gives the
 * same result. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	struct ti_cidr c, c2;
	char buf[INET6_ADDRSTRLEN + 8], txt[INET6_ADDRSTRLEN];
	int rc;

	memcpy(s, data, size);
	s[size] = '\0';
	memset(&c, 0xa5, sizeof(c));
	rc = ti_parse_cidr(s, &c);
	if (rc != 0 && rc != -1)
		abort();
	if (rc == 0) {
		if (c.family != 4 && c.family != 6)
			abort();
		if (c.plen > (c.family == 4 ? 32 : 128))
			abort();
		if (!inet_ntop(c.family == 4 ? AF_INET : AF_INET6, c.addr, txt, sizeof(txt)))
			abort();
		snprintf(buf, sizeof(buf), "%s/%u", txt, c.plen);
		if (ti_parse_cidr(buf, &c2) || c2.family != c.family || c2.plen != c.plen ||
		    memcmp(c2.addr, c.addr, 16)) {
			fprintf(stderr, "ti_parse_cidr('%s') does not round-trip through '%s'\n", s, buf);
			abort();
		}
		for (int i = c.family == 4 ? 4 : 16; i < 16; i++)
			if (c.addr[i])
				abort(); /* IPv4 must leave the rest of the key zero */
	}
	free(s);
	return 0;
}
