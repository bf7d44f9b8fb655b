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
 * pcap_open_dead + pcap_dump_open ("-": stdout).  Each record is a 20-byte
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
	uint64_t ts_ns;        /* the capture's timestamp, ns since the epoch */
	const uint8_t *data;   /* caplen bytes, valid until the next read */
	uint32_t caplen;       /* bytes in the file */
	uint32_t wirelen;      /* the frame's length on the wire */
	uint32_t ip_off;       /* where the IP header starts */
	bool v4;               /* the link layer says IPv4 (else IPv6) */
	uint32_t ifindex;      /* LINUX_SLL2's interface index, else 0 */
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

struct ti_pcap_writer {
	void *p;         /* pcap_t (dead) */
	void *d;         /* pcap_dumper_t */
	int64_t rt_offset_ns; /* added to a record's ts: CLOCK_MONOTONIC -> wall clock */
	uint64_t written;     /* records */
	uint64_t unflushed;   /* records since the last flush */
};

/* Create path ("-": stdout) for records of up to snaplen captured bytes,
 * their ts + rt_offset_ns being the wall clock.  0, or -errno with why. */
int ti_pcap_writer_open(struct ti_pcap_writer *w, const char *path, uint32_t snaplen,
			int64_t rt_offset_ns, char *why, size_t whylen);
/* One record: e and its caplen bytes from the IP header on. */
void ti_pcap_writer_write(struct ti_pcap_writer *w, const struct ti_event *e, const uint8_t *bytes,
			  uint32_t caplen, uint32_t wirelen);
/* Push what is buffered to the file: 0 or -errno. */
int ti_pcap_writer_flush(struct ti_pcap_writer *w);
/* Flush and close (idempotent): 0 or -errno of the last write. */
int ti_pcap_writer_close(struct ti_pcap_writer *w);

#endif /* TI_PCAPFILE_H */
