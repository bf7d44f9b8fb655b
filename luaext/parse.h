/* SPDX-License-Identifier: GPL-2.0-only */
/* parse.h: the filter's plain-string parsers (luaext/parse.c), no Lua, so
 * that the fuzz targets (spec/fuzz/fuzz_ports.c, fuzz_cidr.c) link them
 * alone.  options.c and map.c call them for open()'s filter and map keys. */
#ifndef TI_PARSE_H
#define TI_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include "kernel.h" /* struct ti_cidr */

/* "22", "8000-8100", or several of them separated by commas, spaces allowed
 * around each: set their bits in bits[8192].  0, or -1 with a message in err
 * (naming spec), bits then partly set. */
int ti_parse_ports(const char *spec, uint8_t *bits, char *err, size_t errlen);

/* "10.0.0.0/8", "192.0.2.1", "2001:db8::/32", "::1" into out (an address
 * without a prefix length is a host: /32, /128).  0, or -1. */
int ti_parse_cidr(const char *spec, struct ti_cidr *out);

#endif /* TI_PARSE_H */
