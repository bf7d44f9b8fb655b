-- SPDX-License-Identifier: GPL-2.0-only
-- Records stay whole under traffic from several CPUs at once (issue 15).
--
-- The BPF hooks build each segment in per-CPU scratch memory.  On
-- PREEMPT_RT they run preemptible (migration disabled only), so two
-- invocations on one CPU could interleave and mix two segments into one
-- record; on any kernel a bug there would show as records whose fields
-- come from different segments, or as one segment delivered twice.
--
-- One receiving namespace R; SENDERS senders, each in its own namespace
-- joined to R by a veth, plus one on R's loopback, pinned with taskset to
-- the CPUs in turn (the receive path runs on the sender's CPU: veth and lo
-- queue to that CPU's backlog).  Each sender (hping3 -A, ACKs with data to
-- a listening port in R) has its own template: addresses, destination
-- port, sequence and acknowledgment numbers, window and payload length;
-- its source port counts up from its own base, one per segment.  So every
-- record names exactly one segment that was sent: all its fields must
-- equal its sender's template, its source port must be one that sender
-- used, and no segment may come twice.  R answers each ACK with exactly one
-- RST, so R's Tcp OutRsts delta is the number of these segments its TCP
-- received, and the records must number exactly that, and what the senders
-- say they sent.
--
-- A test build shows the spec can fail: `make clobber-check` builds with
-- -DTI_TEST_CLOBBER (one scratch shared by all CPUs, a delay between parse
-- and emit) and requires this spec to fail there (doc/HACKING.md).
local net = require "support.net"

local SENDERS = 3     -- veth senders; plus one on loopback
local COUNT = 300     -- segments per sender
local INTERVAL = "u1000"

-- the session: every record as one line of text, then the counters
local CHILD = [[
local tcpinspect = require "tcpinspect"
local cfg = assert(load("return " .. arg[1]))()
local s, err = tcpinspect.open{ mode = cfg.mode, wakeup = 1, ring_size = 16 * 1024 * 1024,
	aggregates = false, filter = { dport = cfg.dports } }
if not s then io.write("FAIL ", tostring(err), "\n") os.exit(1) end
local recs = {}
s:on_packet(function(p)
	recs[#recs + 1] = ("%s %s %d %d %d %d %d %d %d %d"):format(p.saddr, p.daddr, p.sport,
		p.dport, p.seq, p.ack, p.len, p.window, p.flags, p.cpu)
end)
io.write("READY ", s.mode, "\n") io.stdout:flush()
while not io.open(cfg.stop) do s:poll(50) end
local quiet = 0
while quiet < 4 do if s:poll(100) == 0 then quiet = quiet + 1 else quiet = 0 end end
local st = s:stats()
for _, r in ipairs(recs) do io.write("R ", r, "\n") end
io.write(("STATS %d %d %d %d %d %d\n"):format(st.seen, st.filtered, st.matched,
	st.sampled_out, st.delivered, st.dropped))
s:close()
]]

-- listening sockets in R for the destination ports (cgroup_skb sees only
-- segments that reach a socket; a listener answers a bare ACK with a RST)
local LISTENER = [[
local socket = require "socket"
local keep = {}
for p in arg[1]:gmatch("%d+") do
	local s = socket.tcp4()
	assert(s:setoption("reuseaddr", true))
	assert(s:bind("0.0.0.0", tonumber(p)))
	assert(s:listen(64))
	keep[#keep + 1] = s
end
io.write("LISTENING\n") io.stdout:flush()
socket.sleep(3600)
]]

local function online_cpus()
	local _, out = net.sh("nproc")
	return tonumber(out:match("%d+")) or 1
end

-- R and SENDERS sender namespaces, each joined to R by a veth
local function topology(cleanup)
	local r = net.netns("r")
	cleanup(function() r:destroy() end)
	local id = math.random(2, 250)
	local links = {}
	for i = 1, SENDERS do
		local s = net.netns("s")
		cleanup(function() s:destroy() end)
		local raddr = ("10.%d.%d.1"):format(id, i)
		local saddr = ("10.%d.%d.2"):format(id, i)
		net.must(("ip link add tir%d netns %s type veth peer name tis%d netns %s")
			:format(i, r.name, i, s.name))
		net.must(("ip -n %s addr add %s/24 dev tir%d"):format(r.name, raddr, i))
		net.must(("ip -n %s addr add %s/24 dev tis%d"):format(s.name, saddr, i))
		net.must(("ip -n %s link set tir%d up"):format(r.name, i))
		net.must(("ip -n %s link set tis%d up"):format(s.name, i))
		links[i] = { ns = s.name, saddr = saddr, daddr = raddr }
	end
	return r, links
end

describe("#kernel concurrency", function()
	for _, mode in ipairs(net.modes()) do
		it(("[%s] traffic from several CPUs at once: every record is one segment that was sent")
			:format(mode), function()
			local cleanup = net.cleanups(finally)
			do
				local r, links = topology(cleanup)
				local ncpu = online_cpus()
				local dbase = net.port(SENDERS + 1)
				-- sender 0: loopback in R; 1..SENDERS: the veths
				local senders = { [0] = { ns = r.name, saddr = "127.0.0.1", daddr = "127.0.0.1" } }
				for i = 1, SENDERS do senders[i] = links[i] end
				local dports = {}
				for i = 0, SENDERS do
					local t = senders[i]
					t.dport = dbase + i
					t.sbase = 40000 + 1000 * i -- above the listeners, below the ephemeral range
					t.seq = 100000007 * (i + 1) % 4294967296
					t.ack = 7000003 * (i + 3)
					t.window = 1000 + 17 * i
					t.len = 20 + 13 * i
					t.cpu = i % ncpu
					dports[#dports + 1] = t.dport
				end

				local lout = net.tmpfile(".out")
				local lscript = net.tmpfile(".lua")
				net.write_file(lscript, LISTENER)
				net.spawn("exec ip netns exec " .. r.name .. " " ..
					net.lua_cmd(lscript, table.concat(dports, ",")), lout)
				assert(net.wait_until(function() return (net.read_file(lout) or ""):find("LISTENING") end, 20),
					"listener did not start: " .. (net.read_file(lout) or ""))

				-- the session runs in R (tc attaches to R's interfaces); cgroup
				-- mode needs the cgroup2 mount, which `ip netns exec` hides
				local stop = net.tmpfile(".stop")
				local out = net.tmpfile(".out")
				local script = net.tmpfile(".lua")
				net.write_file(script, CHILD)
				local cfg = net.serialize{ mode = mode, dports = dports, stop = stop }
				local pre = mode == "cgroup" and "" or ("ip netns exec " .. r.name .. " ")
				local pid = net.spawn(("exec timeout -s KILL %d %s%s"):format(net.IN_VM and 900 or 120,
					pre, net.lua_cmd(script, cfg)), out)
				cleanup(function() net.kill(pid, "KILL") net.wait_exit(pid, 10) end)
				assert(net.wait_until(function()
					local o = net.read_file(out) or ""
					return o:find("READY") or o:find("FAIL") or not net.alive(pid)
				end, 20))
				assert.matches("READY " .. mode, net.read_file(out) or "")

				local before = net.snmp(r.name)
				local sp = {}
				for i = 0, SENDERS do
					local t = senders[i]
					t.log = net.tmpfile(".hping")
					sp[i] = net.spawn(("exec ip netns exec %s taskset -c %d timeout 300 hping3 -A -c %d -i %s " ..
						"-s %d -p %d -M %d -L %d -w %d -d %d %s"):format(t.ns, t.cpu, COUNT, INTERVAL,
						t.sbase, t.dport, t.seq, t.ack, t.window, t.len, t.daddr), t.log)
				end
				for i = 0, SENDERS do
					assert(net.wait_exit(sp[i], net.scale(60)), "hping3 did not finish")
				end
				local after = net.snmp(r.name)
				net.write_file(stop, "stop\n")
				assert(net.wait_exit(pid, net.scale(30)), "the session did not stop")
				local res = net.read_file(out) or ""
				local st = { res:match("STATS (%d+) (%d+) (%d+) (%d+) (%d+) (%d+)") }
				assert(#st == 6, "no result from the session:\n" .. res:sub(1, 2000))

				-- what each sender says it sent
				local by_dport, sent = {}, 0
				for i = 0, SENDERS do
					local t = senders[i]
					local log = net.read_file(t.log) or ""
					t.sent = tonumber(log:match("(%d+) packets tr?a?n?s?mitted"))
					assert(t.sent, "no hping3 statistics:\n" .. log)
					sent = sent + t.sent
					t.got = 0
					by_dport[t.dport] = t
				end

				-- every record against its sender's template
				local bad, dup, seen, cpus, n = {}, 0, {}, {}, 0
				for line in res:gmatch("R ([^\n]+)") do
					n = n + 1
					local sa, da, spt, dpt, seq, ack, len, win, fl, cpu =
						line:match("^(%S+) (%S+) (%d+) (%d+) (%d+) (%d+) (%d+) (%d+) (%d+) (%d+)$")
					local t = by_dport[tonumber(dpt)]
					local idx = t and tonumber(spt) - t.sbase
					if not (t and sa == t.saddr and da == t.daddr and tonumber(seq) == t.seq
						and tonumber(ack) == t.ack and tonumber(len) == t.len
						and tonumber(win) == t.window and tonumber(fl) == 16
						and idx >= 0 and idx < t.sent) then
						bad[#bad + 1] = line
					else
						local k = dpt .. "/" .. idx
						if seen[k] then dup = dup + 1 end
						seen[k] = true
						t.got = t.got + 1
					end
					cpus[cpu] = true
				end
				local ncpus_seen = 0
				for _ in pairs(cpus) do ncpus_seen = ncpus_seen + 1 end
				local outrsts = after.OutRsts - before.OutRsts
				net.say("[%s] %d senders on %d CPUs: %d sent, %d records from %d CPUs, %d OutRsts, %d bad, %d dup",
					mode, SENDERS + 1, ncpu, sent, n, ncpus_seen, outrsts, #bad, dup)

				assert(#bad == 0, ("%d of %d records belong to no segment sent, e.g.:\n%s"):format(
					#bad, n, table.concat(bad, "\n", 1, math.min(#bad, 5))))
				assert.are.equal(0, dup)
				assert.are.equal(outrsts, n)
				for i = 0, SENDERS do
					local t = senders[i]
					assert.are.equal(t.sent, t.got, ("sender %d (%s -> %s, CPU %d)"):format(i, t.saddr,
						t.daddr, t.cpu))
				end
				assert.are.equal(math.min(ncpu, SENDERS + 1), ncpus_seen)
				-- seen filtered matched sampled_out delivered dropped
				assert.are.equal(n, tonumber(st[3]))
				assert.are.equal(n, tonumber(st[5]))
				assert.are.equal(0, tonumber(st[6]))
			end
		end)
	end
end)
