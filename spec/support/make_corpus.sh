#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# Make spec/fixtures/filter_corpus.pcap: the corpus of real TCP segments the
# filter-expression differential spec (spec/36-kernel_expr_spec.lua) runs
# every expression against.  Run as root from the checkout:
#
#     spec/support/make_corpus.sh [OUT.pcap]
#
# Everything happens inside two private network namespaces joined by a veth
# pair (10.231.0.1 / fd00:231::1 on side A, 10.231.0.2 / fd00:231::2 on side
# B) and on A's loopback (127.0.0.1, ::1; MTU set to 1500 so that segments
# stay small); no traffic leaves them.  tcpdump captures A's lo and A's veth
# (both directions); the traffic:
#   - hping3, IPv4, all 256 combinations of the 8 TCP flags (-F -S -R -P -A
#     -U -X -Y), on lo and over the veth, payloads of 0-49 bytes, TCP
#     timestamps on every third, each to a closed port and to an open one
#     (so the replies are RSTs, SYN-ACKs, ...);
#   - spec/support/tcp_flags_sender.py, the same 256 combinations over IPv6
#     (hping3 has no IPv6), twice each, with MSS / SACK / timestamp / wscale
#     options and payloads of 0-39 bytes;
#   - curl against python3's http.server (v4, v6), nc transfers (v4, v6),
#     iperf3 (v4, v6, MSS 600, 60 KB each), all with their handshakes,
#     ACKs and FINs.
# The captures are then cut to their TCP segments from the IP header on,
# at most 1500 bytes (the MTU: the veth's TSO/GSO aggregates tcpdump sees
# above it are no wire segment), and written as one LINKTYPE_RAW pcap
# (spec/support/pcapfile.lua), lo first.
# Every step is bounded in time (timeout) and the namespaces are removed at
# exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${1:-spec/fixtures/filter_corpus.pcap}
A=ticorpA$$
B=ticorpB$$
TMP=$(mktemp -d /tmp/tcpinspect-corpus.XXXXXX)
PIDS=()

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	ip netns pids "$A" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
	ip netns pids "$B" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
	ip netns del "$A" 2>/dev/null || true
	ip netns del "$B" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap "exit 1" INT TERM

inA() { ip netns exec "$A" "$@"; }
inB() { ip netns exec "$B" "$@"; }

ip netns add "$A"
ip netns add "$B"
ip link add tcA$$ netns "$A" type veth peer name tcB$$ netns "$B"
inA ip link set lo mtu 1500 up
inB ip link set lo up
inA ip addr add 10.231.0.1/24 dev tcA$$
inA ip addr add fd00:231::1/64 dev tcA$$ nodad
inB ip addr add 10.231.0.2/24 dev tcB$$
inB ip addr add fd00:231::2/64 dev tcB$$ nodad
inA ip link set tcA$$ up
inB ip link set tcB$$ up
sleep 1

ip netns exec "$A" timeout 600 tcpdump -i lo -n -U -s 0 -w "$TMP/lo.pcap" tcp >"$TMP/tdlo.log" 2>&1 &
PIDS+=($!)
ip netns exec "$A" timeout 600 tcpdump -i tcA$$ -n -U -s 0 -w "$TMP/veth.pcap" tcp >"$TMP/tdveth.log" 2>&1 &
PIDS+=($!)
for f in tdlo tdveth; do
	for _ in $(seq 50); do grep -q "listening on" "$TMP/$f.log" && break; sleep 0.1; done
done

# servers: an open port for hping3 (7001), http (8080), nc (9000), iperf3 (5201)
inA timeout 300 nc -lk 0.0.0.0 7001 >/dev/null 2>&1 &
PIDS+=($!)
mkdir -p "$TMP/www"
for n in 1 3 9 20; do head -c $((n * 1000)) /dev/urandom | base64 > "$TMP/www/f$n.txt"; done
(cd "$TMP/www" && exec ip netns exec "$A" timeout 300 python3 -m http.server --bind :: 8080) >/dev/null 2>&1 &
PIDS+=($!)
inA timeout 300 iperf3 -s -p 5201 >/dev/null 2>&1 &
PIDS+=($!)
sleep 1

# 1. hping3: every flag combination, IPv4, lo and veth
hping() { # ns dst flags-index port
	local ns=$1 dst=$2 i=$3 port=$4 flags="" opt=""
	local letters=(F S R P A U X Y)
	for b in 0 1 2 3 4 5 6 7; do (( i >> b & 1 )) && flags="$flags -${letters[$b]}"; done
	(( i % 3 == 0 )) && opt="--tcp-timestamp"
	ip netns exec "$ns" timeout 3 hping3 -q -c 1 -s $((30000 + i)) -k -p "$port" \
		-d $((i % 50)) -w $((512 + i)) $flags $opt "$dst" >/dev/null 2>&1 || true
}
BATCH=()
for i in $(seq 0 255); do
	for port in 7000 7001; do
		hping "$A" 127.0.0.1 "$i" $port &
		BATCH+=($!)
		hping "$B" 10.231.0.1 "$i" $port &
		BATCH+=($!)
	done
	if (( i % 8 == 7 )); then
		for p in "${BATCH[@]}"; do wait "$p" || true; done
		BATCH=()
	fi
done

# 2. the same over IPv6 (raw socket), lo and veth
inA timeout 30 python3 spec/support/tcp_flags_sender.py ::1 ::1 7000 2
inB timeout 30 python3 spec/support/tcp_flags_sender.py fd00:231::2 fd00:231::1 7001 2

# 3. curl, v4 and v6, over the veth and lo
for f in f1 f3 f9 f20; do
	inB timeout 10 curl -s -o /dev/null "http://10.231.0.1:8080/$f.txt" || true
	inB timeout 10 curl -s -o /dev/null "http://[fd00:231::1]:8080/$f.txt" || true
done
inA timeout 10 curl -s -o /dev/null "http://127.0.0.1:8080/f3.txt" || true
inA timeout 10 curl -s -o /dev/null "http://[::1]:8080/f9.txt" || true

# 4. nc transfers, v4 and v6
for dst in 10.231.0.1 fd00:231::1; do
	inA timeout 10 nc -l -p 9000 >/dev/null 2>&1 &
	sleep 0.3
	NCPID=$!
	head -c 3000 /dev/urandom | inB timeout 10 nc -q 1 "$dst" 9000 || true
	wait "$NCPID" 2>/dev/null || true
done

# 5. iperf3, v4 and v6, small MSS
inB timeout 20 iperf3 -c 10.231.0.1 -p 5201 -n 60K -M 600 >/dev/null 2>&1 || true
inB timeout 20 iperf3 -c fd00:231::1 -p 5201 -n 60K -M 600 >/dev/null 2>&1 || true

sleep 1
# TERM (a background job ignores INT): timeout passes it on, tcpdump flushes and exits
for p in "${PIDS[@]:0:2}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done

lua5.4 - "$TMP/lo.pcap" "$TMP/veth.pcap" "$OUT" <<'EOF'
package.path = "spec/?.lua;" .. package.path
local pcapfile = require "support.pcapfile"
local lo, veth, out = ...
local pkts = {}
for _, f in ipairs{ lo, veth } do
	-- the MTU's worth at most: what TSO/GSO hands tcpdump above it is not
	-- a segment on any wire (and BPF_PROG_TEST_RUN takes a page at most)
	for _, p in ipairs(pcapfile.to_raw(pcapfile.read(f))) do
		if #p.data <= 1500 then pkts[#pkts + 1] = p end
	end
end
pcapfile.write(out, pcapfile.LINKTYPE_RAW, pkts)
local v4, v6 = 0, 0
for _, p in ipairs(pkts) do if p.data:byte(1) >> 4 == 4 then v4 = v4 + 1 else v6 = v6 + 1 end end
print(("%s: %d TCP segments (%d IPv4, %d IPv6)"):format(out, #pkts, v4, v6))
EOF
