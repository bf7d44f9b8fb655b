/* SPDX-License-Identifier: GPL-2.0-only */
/* pcapfile.h: pcap files through libpcap, no Lua (luaext/pcapfile.c).
 *
 * Reading: every frame of a capture (pcap or pcapng, any file libpcap's
 * pcap_open_offline reads, "-" for stdin) with its link-layer header taken
 * off, so that the frame walk of bpf/ti_parse.h can run on it as tc and
 * cgroup run it on an sk_buff.  Link types: EN10MB (Ethernet, up to two
 * VLAN tags walked), LINUX_SLL and LINUX_SLL2 (frames whose packet type is
 * not PACKET_HOST -- sent, broadcast, other host -- are skipped: tcpinspect
 * sees what a host receives), RAW, IPV4, IPV6, NULL and LOOP (BSD loopback).
 *
 * Writing: LINKTYPE_LINUX_SLL2 with nanosecond timestamps, through
 * pcap_open_dead + pcap_dump_fopen on a file we open ourselves (O_NOFOLLOW,
 * mode 0600; "-": stdout) behind a stdio cookie, so that every write(2) and
 * its error is ours: libpcap ignores fwrite's result, and after an error its
 * pcap_dump_flush says nothing.  A packet counts as written when write(2)
 * accepted its last byte.  Each record is a 20-byte
 * SLL2 header (the segment's protocol, its interface index, packet type
 * PACKET_HOST, ARPHRD_NONE, no address) and the captured bytes, from the IP
 * header on; the record's length is the segment's (wirelen) plus 20.
 */
#ifndef TI_PCAPFILE_H
#define TI_PCAPFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tcpinspect.h"

#define TI_SLL2_HLEN 20

/* One frame of a capture. */
struct ti_pcap_frame {
	uint64_t ts_ns;	     /* the capture's timestamp, ns since the epoch */
	const uint8_t *data; /* caplen bytes, valid until the next read */
	uint32_t caplen;     /* bytes in the file */
	uint32_t wirelen;    /* the frame's length on the wire */
	uint32_t ip_off;     /* where the IP header starts */
	bool v4;	     /* the link layer says IPv4 (else IPv6) */
	uint32_t ifindex;    /* LINUX_SLL2's interface index, else 0 */
};

struct ti_pcap_reader {
	void *p; /* pcap_t */
	int linktype;
	uint64_t frames; /* read so far */
};

/* Open a capture: 0, or -errno with why ("FILE: what is wrong"). */
int ti_pcap_reader_open(struct ti_pcap_reader *r, const char *path, char *why, size_t whylen);
/* A timestamp (seconds, nanoseconds) in ns since the epoch, saturating:
 * 0 before the epoch, UINT64_MAX past it. */
uint64_t ti_pcap_ts_ns(int64_t sec, int64_t nsec);
/* The next frame: 1 a frame that may carry IP (f filled), 2 a frame that
 * is not for us (not IP, not received: skipped), 0 the end of the file,
 * -EIO with why for a truncated or damaged file. */
int ti_pcap_reader_next(struct ti_pcap_reader *r, struct ti_pcap_frame *f, char *why, size_t whylen);
/* The link type's name ("EN10MB", "LINUX_SLL2", ...) */
const char *ti_pcap_linktype_name(int linktype);
void ti_pcap_reader_close(struct ti_pcap_reader *r);

/* Records the stdio buffer may hold before we know they reached the file:
 * BUFSIZ bytes of records of at least 36 bytes, with room to spare (when
 * full, the writer flushes first). */
#define TI_PCAP_PENDING 1024

struct ti_pcap_writer {
	void *p; /* pcap_t (dead) */
	void *d; /* pcap_dumper_t, over f */
	void *f; /* FILE (fopencookie over fd: every write(2) is ours) */
	int fd;
	bool own_fd;			/* false for "-" (stdout): not closed */
	bool regular;			/* a regular file: cut back to its last whole record on an error */
	int err;			/* the first write(2)/close(2) error (errno), then nothing more is written */
	int64_t rt_offset_ns;		/* added to a record's ts: CLOCK_MONOTONIC -> wall clock */
	uint64_t written;		/* records handed to libpcap */
	uint64_t in_file;		/* records whose last byte write(2) accepted */
	uint64_t unflushed;		/* records since the last flush */
	uint64_t bytes;			/* bytes handed to libpcap (the file's header included) */
	uint64_t disk;			/* bytes write(2) accepted */
	uint64_t good_end;		/* where the last whole record (or the header) ends */
	uint64_t ends[TI_PCAP_PENDING]; /* ring: where the records not yet known in the file end */
	unsigned head, npending;
	char path[256]; /* for messages */
};

/* Create path ("-": stdout) for records of up to snaplen captured bytes,
 * their ts + rt_offset_ns being the wall clock.  0, or -errno with why.
 * The file is opened with O_NOFOLLOW (a symbolic link is refused: ELOOP),
 * created 0600, truncated if it exists. */
int ti_pcap_writer_open(struct ti_pcap_writer *w, const char *path, uint32_t snaplen, int64_t rt_offset_ns, char *why,
			size_t whylen);
/* One record: e and its caplen bytes from the IP header on.  After a write
 * error nothing more is written (flush and close report it). */
void ti_pcap_writer_write(struct ti_pcap_writer *w, const struct ti_event *e, const uint8_t *bytes, uint32_t caplen,
			  uint32_t wirelen);
/* Push what is buffered to the file: 0 or -errno of the first error. */
int ti_pcap_writer_flush(struct ti_pcap_writer *w);
/* Flush and close (idempotent): 0 or -errno of the first write or close
 * error; after an error a regular file is cut back to its last whole
 * record, so it holds in_file records and reads cleanly. */
int ti_pcap_writer_close(struct ti_pcap_writer *w);
/* The message for an error err (-errno) of w: "PATH: strerror; N packets
 * written to it". */
void ti_pcap_writer_why(const struct ti_pcap_writer *w, int err, char *why, size_t whylen);

#endif /* TI_PCAPFILE_H */
