#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# spec/bench/live.sh: real traffic on the host kernel (make bench, section 2).
#
# hping3 --flood -S on loopback for BENCH_SECS seconds per configuration, the
# configurations in a shuffled order in each of BENCH_ROUNDS rounds.  The
# rate the generator achieves is counted from /proc/net/snmp (Tcp InSegs:
# every SYN and the RST or SYN-ACK/RST exchange it causes).  Each
# configuration's rate is divided by the no-probe baseline of the same round
# and traffic kind; the median of those ratios is reported.
#
#   closed port (SYN -> RST):   base, ti-tc-bare, ti-tc-agg, ti-tc-lua, ti-tc-args,
#                               ti-tc-lua-w1, bpftrace, tcpdump
#   open port (listener, SYN flood; cgroup_skb only sees segments that reach a
#   socket, so SYNs to a closed port are invisible to it):
#                               base-open, ti-cg-agg, ti-cg-lua
#   established flows (spec/bench/est_load.py: 16 connections on lo, 64-byte
#   writes with TCP_NODELAY, as fast as one Python sender goes):
#                               base-est, ti-tc-bare-est, ti-tc-agg-est, bpftrace-est,
#                               tcpdump-est
#   closed port, the cost of drops (filter dport, so every SYN the hook
#   matches is one NO_SOCKET drop; tcpdump beside them):
#                               ti-tc-agg-nodrops, ti-tc-agg-drops, ti-tc-lua-drops
#   closed port, the cost of connection tracking (conns = true, filter dport,
#   idle_timeout 0.2 s, max_conns BENCH_MAX_CONNS (16384); beside
#   ti-tc-agg-nodrops; spec/bench/live_probe.lua says why):
#                               ti-tc-agg-conns
#   closed port, what `tcpinspect watch` costs (issue 23): ti-tc-watch runs
#   the command itself (tc on lo, --port, its lines to /dev/null; its
#   summary's counters, nothing lost or the trial fails), beside
#   ti-tc-lua1-noagg (a 1-field callback on_packet(fn, {"len"}) with
#   aggregates = false, what watch opens):
#                               ti-tc-watch, ti-tc-lua1-noagg
#   closed port, the flows table's share of the aggregates (every map but
#   flows: ports, sources, len_hist; beside ti-tc-agg):
#                               ti-tc-agg-noflows
#   bare: hook, parse, filter and counters only; agg: plus the aggregates;
#   lua: plus a per-event callback reading 3 fields of the view; args: the
#   same 3 fields passed as arguments (on_packet(fn, fields)); -drops:
#   drops = true (lua-drops: the callback is on_drop), and the trial
#   fails unless every SYN matched is exactly one NO_SOCKET drop in
#   stats().drops, its reasons and the drops map, none lost
#   (spec/bench/live_probe.lua, check=).
#
#   CONFIG@base (ti-* configs only; BENCH_BASELINE=<rev> in spec/bench/run):
#   the same configuration with the baseline revision's core, in the same
#   rounds, so a step's before and after come from one run.
#
# Env: BENCH_ROUNDS (7), BENCH_SECS (3), BENCH_PORT (47999), BENCH_OPEN_PORT (47998),
# BENCH_EST_PORT (47997), BENCH_CONFIGS (space-separated subset).
set -uo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${BENCH_ROUNDS:-7}
SECS=${BENCH_SECS:-3}
PORT=${BENCH_PORT:-47999}
OPEN_PORT=${BENCH_OPEN_PORT:-47998}
EST_PORT=${BENCH_EST_PORT:-47997}
CONFIGS=${BENCH_CONFIGS:-"base ti-tc-bare ti-tc-agg ti-tc-lua ti-tc-args ti-tc-lua-w1 ti-tc-lua1-noagg ti-tc-watch ti-tc-agg-noflows ti-tc-agg-nodrops ti-tc-agg-drops ti-tc-lua-drops ti-tc-agg-conns bpftrace tcpdump base-open ti-cg-agg ti-cg-lua base-est ti-tc-bare-est ti-tc-agg-est bpftrace-est tcpdump-est"}
LUA=${LUA:-lua5.4}
TMP=$(mktemp -d /tmp/ti-bench.XXXXXX)
RES=$TMP/results # lines: round config rate sent extra...
LISTENER=

cleanup() {
	[ -n "$LISTENER" ] && kill "$LISTENER" 2>/dev/null && wait "$LISTENER" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

for tool in hping3 bpftrace tcpdump; do
	command -v $tool >/dev/null || { echo "live.sh: $tool is missing" >&2; exit 2; }
done
if ss -Hltn "sport = :$PORT" | grep -q .; then
	echo "live.sh: port $PORT has a listener; it must be closed (BENCH_PORT=...)" >&2
	exit 2
fi
# bpftrace tracepoints need tracefs; it is not mounted on this machine by default.
if [ ! -e /sys/kernel/tracing/events ]; then
	mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null &&
		echo "  (mounted tracefs on /sys/kernel/tracing for bpftrace tracepoints)"
fi

insegs() { awk '/^Tcp:/ { getline; print $11; exit }' /proc/net/snmp; }
now() { date +%s.%N; }

wait_for() { # wait_for CMD... : up to 15 s
	local i
	for ((i = 0; i < 150; i++)); do "$@" && return 0; sleep 0.1; done
	return 1
}

# a listener with a big backlog, never accepting
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $OPEN_PORT)); s.listen(4096)
time.sleep(1e6)" &
LISTENER=$!
wait_for ss -Hltn "sport = :$OPEN_PORT" || { echo "live.sh: listener did not start" >&2; exit 2; }

proc_use() { # proc_use PID: its context switches and CPU ticks so far (live_probe's csw, cpu_ticks)
	echo "$(awk '/ctxt_switches/ { n += $2 } END { print n + 0 }' /proc/$1/status 2>/dev/null)" \
		"$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' /proc/$1/stat 2>/dev/null)"
}

stop_pid() { # stop_pid PID: SIGINT (bpftrace, tcpdump print their counts), again if missed, then TERM
	local pid=$1 i
	for i in 1 2 3; do
		kill -INT "$pid" 2>/dev/null || break
		for ((j = 0; j < 30; j++)); do kill -0 "$pid" 2>/dev/null || break 2; sleep 0.1; done
	done
	kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

trial() { # trial ROUND CONFIG
	local round=$1 cfg=$2 port=$PORT pid= extra="" a b t0 t1 sent est= cpath= use0= use1
	# CONFIG@base: the same configuration with the baseline's core
	# (BENCH_BASELINE=<rev>, spec/bench/run), in the same rounds
	local c=${cfg%@base}
	if [ "$c" != "$cfg" ]; then
		[ -n "${BENCH_BASELINE_CORE:-}" ] || { echo "live.sh: $cfg needs BENCH_BASELINE=<rev>" >&2; return 1; }
		cpath="$(dirname "$(dirname "$BENCH_BASELINE_CORE")")/?.so;"
	fi
	case $c in base-open | ti-cg-*) port=$OPEN_PORT ;; esac
	case $c in *-est) port=$EST_PORT est=1 ;; esac
	rm -f "$TMP"/ready "$TMP"/stop "$TMP"/probe.out
	case $c in
	ti-tc-watch)
		build/bin/tcpinspect watch --mode tc --dev lo --port "$port" >/dev/null 2>"$TMP/watch.err" &
		pid=$!
		wait_for grep -qs "Ctrl-C to stop" "$TMP/watch.err" || { echo "live.sh: $cfg did not start: $(cat "$TMP/watch.err")" >&2; kill $pid; return 1; }
		use0=$(proc_use $pid)
		;;
	ti-tc-* | ti-cg-*)
		local mode=tc kind=${c#ti-tc-}
		[[ $c == ti-cg-* ]] && mode=cgroup kind=${c#ti-cg-}
		kind=${kind%-est}
		(
			[ -n "$cpath" ] && export TI_CPATH=$cpath
			exec $LUA spec/bench/live_probe.lua $mode "$kind" "$port" "$TMP/ready" "$TMP/stop" "$TMP/probe.out"
		) &
		pid=$!
		wait_for test -e "$TMP/ready" || { echo "live.sh: $cfg did not start" >&2; kill $pid; return 1; }
		;;
	bpftrace*)
		ulimit -l unlimited 2>/dev/null
		bpftrace -e 'tracepoint:net:netif_receive_skb { @n = count(); }' >"$TMP/bt.out" 2>&1 &
		pid=$!
		wait_for grep -qs Attaching "$TMP/bt.out" || { echo "live.sh: bpftrace did not start:" >&2; cat "$TMP/bt.out" >&2; kill $pid; return 1; }
		;;
	tcpdump*)
		tcpdump -Q in -i lo -n -w /dev/null "tcp port $port" 2>"$TMP/td.err" &
		pid=$!
		wait_for grep -qs listening "$TMP/td.err" || { echo "live.sh: tcpdump did not start" >&2; kill $pid; return 1; }
		;;
	esac
	sleep 0.3
	a=$(insegs)
	t0=$(now)
	if [ -n "$est" ]; then
		python3 spec/bench/est_load.py "$port" "$SECS" 16 >"$TMP/hping.out" 2>&1
	else
		timeout -s INT "$SECS" hping3 --flood -S -p "$port" 127.0.0.1 >"$TMP/hping.out" 2>&1
	fi
	t1=$(now)
	b=$(insegs)
	sent=$(awk '/packets transmitted/ { print $1 }' "$TMP/hping.out")
	[ -n "$est" ] && sent=$(sed -n 's/^sent=//p' "$TMP/hping.out")
	case $cfg in
	ti-tc-watch)
		use1=$(proc_use $pid)
		stop_pid $pid
		# the summary line's counters: "seen N, ..., delivered N, dropped N, ..."
		extra=$(tr -d , <"$TMP/watch.err" | awk '/ seen [0-9]+/ { for (i = 1; i < NF; i++) if ($i ~ /^(seen|matched|delivered|dropped)$/) printf "%s=%s ", $i, $(i + 1) }')
		extra="$extra$(echo $use0 $use1 | awk '{ printf "csw=%d cpu_ticks=%d", $3 - $1, $4 - $2 }') check=$(awk -v e="$extra" 'BEGIN { split(e, f, /[ =]/); for (i = 1; i < length(f); i += 2) v[f[i]] = f[i + 1]; print (v["dropped"] == "0" && v["delivered"] == v["matched"] && v["matched"] > 0) ? "ok" : "FAIL" }')"
		;;
	ti-*)
		touch "$TMP/stop"
		wait $pid || echo "live.sh: $cfg: live_probe failed: $(cat "$TMP/probe.out" 2>/dev/null)" >&2
		extra=$(cat "$TMP/probe.out" 2>/dev/null)
		;;
	bpftrace*)
		stop_pid $pid
		extra="count=$(awk -F': ' '/@n:/ { print $2 }' "$TMP/bt.out")"
		;;
	tcpdump*)
		stop_pid $pid
		extra="captured=$(awk '/packets captured/ { print $1 }' "$TMP/td.err") kdrop=$(awk '/dropped by kernel/ { print $1 }' "$TMP/td.err")"
		;;
	esac
	local rate
	rate=$(awk -v a="$a" -v b="$b" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.0f", (b - a) / (t1 - t0) }')
	echo "$round $cfg $rate ${sent:-0} insegs=$((b - a)) $extra" >>"$RES"
	printf '  round %d  %-17s %9s seg/s  %s\n' "$round" "$cfg" "$rate" "$extra"
}

echo "== 2. Real traffic on $(uname -r): hping3 --flood -S to 127.0.0.1, ${SECS}s per config, $ROUNDS rounds, shuffled"
for ((r = 1; r <= ROUNDS; r++)); do
	for cfg in $(printf '%s\n' $CONFIGS | shuf); do
		trial "$r" "$cfg"
	done
done

echo
# ratios to the same round's baseline, medians; tcpinspect loss accounting
awk -v secs="$SECS" -v configs="$CONFIGS" '
function median(arr, n,    i, j, t) {
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t }
	return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
}
function kv(s, key,    m) { if (match(s, key "=[0-9]+")) return substr(s, RSTART + length(key) + 1, RLENGTH - length(key) - 1) + 0; return -1 }
{
	round = $1; cfg = $2; rate[round, cfg] = $3; line[round, cfg] = $0
	if (!(cfg in seen_cfg)) { seen_cfg[cfg] = 1 }
	if (round > nround) nround = round
}
END {
	ncfg = 0; nc = split(configs, cl, " ")
	for (i = 1; i <= nc; i++) if (cl[i] in seen_cfg) order[++ncfg] = cl[i]
	printf "  %-17s %12s %14s %10s %10s %12s %12s %10s %10s %9s\n", "config", "median seg/s", "ratio to base", "min-max", "InSegs", "tool seen", "delivered", "lost", "ctxsw/1k", "cpu ms/1k"
	printf "  %-17s %12s %14s %10s %10s %12s %12s %10s %10s %9s\n", "------", "------------", "-------------", "-------", "------", "---------", "---------", "----", "--------", "---------"
	for (c = 1; c <= ncfg; c++) {
		cfg = order[c]; base = (cfg ~ /-est(@base)?$/) ? "base-est" : ((cfg ~ /^(base-open|ti-cg-)/) ? "base-open" : "base")
		n = 0; nr = 0; ins = 0; matched = 0; lo = 1e9; hi = 0; seen = 0; deliv = 0; lost = 0; csw = 0; cpu = 0; ev = 0; tool = ""
		for (r = 1; r <= nround; r++) {
			if (!((r, cfg) in rate)) continue
			rates[++n] = rate[r, cfg]
			if ((r, base) in rate && rate[r, base] > 0) {
				x = rate[r, cfg] / rate[r, base]; ratios[++nr] = x
				if (x < lo) lo = x; if (x > hi) hi = x
			}
			l = line[r, cfg]; ins += kv(l, "insegs")
			if (cfg ~ /^ti-/) {
				seen += kv(l, "seen"); matched += kv(l, "matched"); deliv += kv(l, "delivered"); lost += kv(l, "dropped")
				csw += kv(l, "csw"); cpu += kv(l, "cpu_ticks") * 10; ev += kv(l, "delivered")
			} else if (cfg ~ /^bpftrace/) { seen += kv(l, "count") }
			else if (cfg ~ /^tcpdump/) { seen += kv(l, "captured"); lost += kv(l, "kdrop") }
		}
		mr = median(rates, n); rt = nr ? median(ratios, nr) : 0
		ratio_s = sprintf("%.3f", rt); mm = nr ? sprintf("%.2f-%.2f", lo, hi) : "-"
		seen_s = (cfg ~ /^base/) ? "-" : seen
		deliv_s = (cfg ~ /^ti-/ && cfg !~ /-(agg|bare)/) ? deliv : "-"
		lost_s = (cfg ~ /^(ti-|tcpdump)/) ? lost : "-"
		csw_s = (cfg ~ /^ti-/ && cfg !~ /-(agg|bare)/ && ev > 0) ? sprintf("%.2f", csw * 1000 / ev) : "-"
		cpu_s = (cfg ~ /^ti-/ && cfg !~ /-(agg|bare)/ && ev > 0) ? sprintf("%.3f", cpu * 1000 / ev) : "-"
		printf "  %-17s %12d %14s %10s %10d %12s %12s %10s %10s %9s\n", cfg, mr, (cfg ~ /^base/) ? "1 (baseline)" : ratio_s, (cfg ~ /^base/) ? "-" : mm, ins, seen_s, deliv_s, lost_s, csw_s, cpu_s
		summ[cfg] = ratio_s
		if (cfg ~ /^ti-/ && cfg !~ /-(agg|bare)/) lossline = lossline sprintf(" %s delivered %d of %d matched (seen %d), lost %d;", cfg, deliv, matched, seen, lost)
	}
	print "  ratio = this config'"'"'s InSegs rate / the no-probe rate of the same round and traffic (closed port, open port, established)."
	print "  InSegs = Tcp InSegs during the hping3 windows, all rounds (SYNs plus the RSTs/handshake segments they cause)."
	print "  tool seen = segments counted by the tool over all rounds (tcpinspect: stats.seen, port filter;"
	print "  bpftrace: netif_receive_skb events on every interface; tcpdump: packets captured)."
	print "  ctxsw/1k and cpu ms/1k: the tcpinspect consumer process, per 1000 delivered events."
	print ""
	s = "SUMMARY live (median ratio to no-probe):"
	for (c = 1; c <= ncfg; c++) if (order[c] !~ /^base/) s = s sprintf(" %s %s,", order[c], summ[order[c]])
	print s
	print "SUMMARY live loss:" lossline
	# CONFIG against CONFIG@base, round by round (the baseline build in the same rounds)
	s = ""
	for (c = 1; c <= ncfg; c++) {
		cfg = order[c]; if (cfg ~ /@base$/ || !((cfg "@base") in seen_cfg)) continue
		n = 0; lo = 1e9; hi = 0
		for (r = 1; r <= nround; r++) if ((r, cfg) in rate && (r, cfg "@base") in rate && rate[r, cfg "@base"] > 0) {
			x = rate[r, cfg] / rate[r, cfg "@base"]; pr[++n] = x; if (x < lo) lo = x; if (x > hi) hi = x
		}
		if (n) s = s sprintf(" %s %.3f (%.2f-%.2f),", cfg, median(pr, n), lo, hi)
	}
	if (s != "") print "SUMMARY live against the baseline build, round by round (median of this / @base):" s
}' "$RES"
# the conns trials: the table within max_conns, SYN-only entries expired, nothing lost
if grep -q 'copened=' "$RES"; then
	awk '/copened=/ { n++; if ($0 !~ /check=ok/) { bad++; print "  conns do not add up: " $0 } }
		END { printf "SUMMARY live conns: %d trials, %d with the table within max_conns, SYN-only entries expiring, no end lost, every SYN tracked, a hit or counted untracked\n", n, n - bad; exit bad > 0 }' "$RES" || exit 1
fi
# the watch trials: every segment watch matched delivered, none lost, or the run fails
if grep -q ' ti-tc-watch ' "$RES"; then
	awk '$2 == "ti-tc-watch" { n++; if ($0 !~ /check=ok/) { bad++; print "  watch lost segments: " $0 } }
		END { printf "SUMMARY live watch: %d trials, %d with every matched segment delivered, none lost\n", n, n - bad; exit bad > 0 }' "$RES" || exit 1
fi
# the drops trials: every SYN one NO_SOCKET drop, or the run fails
if grep -q 'dseen=' "$RES"; then
	awk '/dseen=/ { n++; if ($0 !~ /check=ok/) { bad++; print "  drops do not add up: " $0 } }
		END { printf "SUMMARY live drops: %d trials, %d with every SYN matched == NO_SOCKET drops == the drops map, none lost\n", n, n - bad; exit bad > 0 }' "$RES" || exit 1
fi
