-- SPDX-License-Identifier: GPL-2.0-only
-- Kernel specs: sessions scoped to a network namespace, a container (PID)
-- or a cgroup, in each mode (doc/modes.md, "Scoping to a container").
--
-- Three servers on one port at once: in namespace A and namespace B (each
-- the server end of a veth pair, net.netns_pair), and in this namespace on
-- a fresh 127.x address.  B's server and a `sleep` started with
-- `ip netns exec B` (the "container") live in a child cgroup G (cgroup v2).
-- Clients connect to all three at the same time while four sessions of the
-- mode watch:
--   scoped   netns = A's name              == tcpdump in A
--   pid      container = the sleep's PID   == tcpdump in B (tc, fentry,
--            kprobe: its netns; cgroup: its cgroup G)
--   cgroup   cgroup = G                    == B's segments (cgroup mode);
--            fentry/kprobe: B's minus the SYNs (a segment counts only with
--            the socket early demux found, and a SYN has none)
--   all      no scope, dport = the port    == A + B + this namespace, each
--            flow with its namespace's inode (tc too: it attaches in every
--            namespace), and the cgroup of B's server on B's flows
--   late     no scope, dport = a second port, opened before a third pair C
--            of namespaces is created: == tcpdump in C (tc follows
--            namespaces that appear: C's interfaces are attached at a poll)
-- Once every session closed, none of their links is left, nor any tc
-- filter in any of the namespaces.
-- Every count is compared with tcpdump in the namespace, segment by segment
-- (flow keys), in the maps and in the events.
-- The CLI's `top --by netns --container PID` and `top --by netns` run
-- through the same traffic: a row per namespace, equal to tcpdump's counts.
local net = require "support.net"
local cli = require "support.cli"
local dkjson = require "dkjson"
local tcpinspect = require "tcpinspect"

local N = 4
local DATALEN = 200

local function inode(path)
	return tonumber(net.must("stat -L -c %i " .. net.q(path)):match("%d+"))
end

local function cgroup2_root()
	local _, out = net.sh("awk '$3 == \"cgroup2\" { print $2; exit }' /proc/mounts")
	return assert(out:match("[^\n]+"), "no cgroup2 mount")
end

-- one session and what it saw: events per flow, netns and cgroup per flow
local function watch(opts)
	local s = net.open(opts)
	local w = { s = s, events = {}, netns = {}, cgroups = {}, probes = {} }
	s:on_packet(function(p)
		local k = net.flow_key(p.saddr, p.sport, p.daddr, p.dport)
		w.events[k] = (w.events[k] or 0) + 1
		w.probes[p.probe] = true
		w.netns[k] = w.netns[k] or {}
		w.netns[k][p.netns] = true
		-- the cgroup each kind of segment carried: SYN, or the others
		local kind = (p.flags & 0x12) == 0x02 and "syn" or "rest"
		w.cgroups[kind] = w.cgroups[kind] or {}
		w.cgroups[kind][p.cgroup] = true
	end)
	return w
end

local function finish(w)
	net.drain(w.s)
	w.flows = {}
	for k, v in pairs(net.map_flows(w.s)) do w.flows[k] = v.packets end
	w.stats = net.stats(w.s)
	net.identity(w.stats)
	w.s:close()
	return w
end

local function merge(...)
	local t = {}
	for _, m in ipairs{ ... } do for k, v in pairs(m) do t[k] = v end end
	return t
end

local function total(m)
	local n = 0
	for _, v in pairs(m) do n = n + v end
	return n
end

-- every flow of want seen in exactly one namespace, ns_of(flow)
local function assert_netns(w, want, ns_of)
	for k in pairs(want) do
		assert.are.same({ [ns_of(k)] = true }, w.netns[k], "netns of " .. k)
	end
end

describe("#kernel containers", function()
	for _, mode in ipairs(net.modes()) do
		it(("[%s] netns, container and cgroup scopes against tcpdump in each namespace"):format(mode), function()
			local defer = net.cleanups(finally)
			local A, B = net.netns_pair(), net.netns_pair()
			defer(function() A:destroy() end)
			defer(function() B:destroy() end)
			local G = ("%s/ticont%d%d"):format(cgroup2_root(), net.getpid(), math.random(1e6))
			net.must("mkdir " .. net.q(G))
			defer(function()
				-- empty it, then remove it
				net.sh(("for p in $(cat %s/cgroup.procs); do kill -9 $p; done; sleep 0.2; rmdir %s"):format(
					net.q(G), net.q(G)))
			end)
			local port, root4 = net.port(), net.addr4()

			local servers = {
				net.session_child({ open = false, listen = { A.server4, port } }, { netns = A.server }),
				net.session_child({ open = false, listen = { B.server4, port } }, { netns = B.server, cgroup = G }),
				net.session_child({ open = false, listen = { root4, port } }),
			}
			for _, c in ipairs(servers) do
				defer(function() c:kill() end)
				c:ready()
			end
			local sleeper = net.spawn("exec sh -c " .. net.q("echo $$ > " .. G .. "/cgroup.procs && exec ip netns exec " ..
				B.server .. " sleep 600"))
			defer(function() net.kill(sleeper, "KILL") end)
			assert(net.wait_until(function()
				return net.read_file("/proc/" .. sleeper .. "/comm") == "sleep\n"
			end, 10), "the container's sleep did not start")

			local inoA, inoB = inode("/run/netns/" .. A.server), inode("/run/netns/" .. B.server)
			local inoHere, gid = inode("/proc/self/ns/net"), inode(G)
			assert.are.equal(inoB, inode("/proc/" .. sleeper .. "/ns/net"))

			local scoped = watch{ mode = mode, netns = A.server }
			-- the same namespace by its inode, and A's interface named in it
			local byino = watch{ mode = mode, netns = inoA, filter = { dev = A.sdev } }
			local pid = watch{ mode = mode, container = sleeper }
			local all = watch{ mode = mode, filter = { dport = port } }
			local port2 = net.port()
			local late = watch{ mode = mode, filter = { dport = port2 } }
			local cg
			if mode == "tc" then
				local ok, err = pcall(tcpinspect.open, { mode = mode, cgroup = G })
				assert.is_false(ok)
				assert.are.equal("cgroup", err.option)
			else
				cg = watch{ mode = mode, cgroup = G }
			end
			for _, w in ipairs{ scoped, byino, pid, all, late, cg } do assert.are.equal(mode, w.s.mode) end
			if mode == "tc" then
				-- attached inside each namespace: its veth and lo
				assert.is_not_nil(scoped.s.probes["tc/ingress:" .. A.sdev])
				assert.is_not_nil(pid.s.probes["tc/ingress:" .. B.sdev])
				-- unscoped: in every namespace, another one's interfaces as NAME@INODE
				assert.is_nil(all.s.probes["tc/ingress:" .. A.sdev])
				for _, key in ipairs{ "lo", A.sdev .. "@" .. inoA, B.sdev .. "@" .. inoB, "lo@" .. inoA,
					A.cdev .. "@" .. inode("/run/netns/" .. A.client) } do
					assert.matches("^attached", all.s.probes["tc/ingress:" .. key] or "missing", nil, false, key)
				end
			end

			-- a pair of namespaces created after the sessions started
			local C = net.netns_pair()
			defer(function() C:destroy() end)
			local inoC = inode("/run/netns/" .. C.server)
			local srvC = net.session_child({ open = false, listen = { C.server4, port2 } }, { netns = C.server })
			defer(function() srvC:kill() end)
			srvC:ready()
			if mode == "tc" then
				-- followed: a rescan at poll time (each second) attaches in C
				local key = ("tc/ingress:%s@%d"):format(C.sdev, inoC)
				for _, w in ipairs{ late, all } do
					assert(net.wait_until(function()
						w.s:poll(50)
						return w.s.probes[key]
					end, 20), "C's " .. C.sdev .. " not attached by a session started before it")
				end
			end

			-- the CLI: one namespace, by the container's PID; and all of them
			local function top(...)
				local args = { "top", "--by", "netns", "--json", "--mode", mode, "--interval", "1000", ... }
				local p = cli.start(args)
				defer(function() p:kill() end)
				return p:ready(net.scale(20))
			end
			local topC = top("--container", tostring(sleeper))
			local topAll = top("--dport", tostring(port))

			local capA = net.tcpdump{ netns = A.server, iface = A.sdev, filter = "tcp port " .. port }
			local capB = net.tcpdump{ netns = B.server, iface = B.sdev, filter = "tcp port " .. port }
			local capR = net.tcpdump{ iface = "lo", filter = "host " .. root4 .. " and port " .. port }
			local capC = net.tcpdump{ netns = C.server, iface = C.sdev, filter = "tcp port " .. port2 }
			-- the three clients at the same time
			local client = net.ROOT .. "/spec/support/client_child.lua"
			local clients = {}
			for _, c in ipairs{ { A.client, A.server4, port }, { B.client, B.server4, port }, { nil, root4, port },
				{ C.client, C.server4, port2 } } do
				local out = net.tmpfile(".client")
				local cmd = net.lua_cmd(client, c[2], c[3], N, DATALEN)
				if c[1] then cmd = "ip netns exec " .. c[1] .. " " .. cmd end
				clients[#clients + 1] = { pid = net.spawn("exec " .. cmd, out), out = out }
			end
			for _, c in ipairs(clients) do
				assert(net.wait_exit(c.pid, 60), "client did not finish")
				assert.matches("DONE " .. N, net.read_file(c.out))
			end
			local pA, pB, pR, pC = capA:stop(), capB:stop(), capR:stop(), capC:stop()
			local function to_port(p) return p.dport == port end
			local wantA, wantB, wantR = net.by_flow(pA), net.by_flow(pB), net.by_flow(pR, to_port)
			assert.are.equal(N, net.count(pA, function(p) return p.flags & 0x12 == 0x02 end))
			assert.are.equal(N, net.count(pB, function(p) return p.flags & 0x12 == 0x02 end))
			assert.are.equal(N, net.count(pC, function(p) return p.flags & 0x12 == 0x02 end))
			assert.are.equal(N, net.count(pR, function(p) return p.flags & 0x12 == 0x02 and p.dport == port end))

			-- top --by netns: the final block's rows, by inode
			local function rows(p)
				p:interrupt()
				local r = p:wait(net.scale(20))
				assert.are.equal(0, r.code, r.err)
				local last = cli.lines(r.out)
				local t = {}
				local block = dkjson.decode(last[#last])
				assert.is_true(block.final)
				for _, row in ipairs(block.netns) do t[row.netns] = { row.packets, row.name } end
				return t
			end
			-- (B's row is named by `ip netns`, which wins over its processes)
			assert.are.same({ [inoB] = { #pB, B.server } }, rows(topC))
			local wantRows = { [inoHere] = { total(wantR), "this namespace" },
				[inoA] = { #pA, A.server }, [inoB] = { #pB, B.server } }
			if mode == "tc" then
				-- its header says what it covers: here, A's and B's two (and any other)
				local n, nns = topAll:stderr():match("tc/ingress: (%d+) interfaces in (%d+) network namespaces")
				assert(n and tonumber(n) >= 7 and tonumber(nns) >= 5, topAll:stderr())
			end
			assert.are.same(wantRows, rows(topAll))

			-- every link the sessions hold, to be gone once they closed
			local held = net.bpf_ids(net.getpid()).links

			-- netns = A: exactly A's segments, each with A's inode
			finish(scoped)
			assert.are.same(wantA, scoped.flows)
			assert.are.same(wantA, scoped.events)
			assert.are.equal(#pA, scoped.stats.seen)
			assert_netns(scoped, wantA, function() return inoA end)
			if mode == "tc" then
				-- named inside A, not by this namespace's interface of that index
				assert.are.same({ ["tc/ingress:" .. A.sdev] = true }, scoped.probes)
			end

			finish(byino)
			assert.are.same(wantA, byino.flows)
			assert.are.same(wantA, byino.events)
			assert_netns(byino, wantA, function() return inoA end)

			-- container = the sleep in B: B's segments, by its netns or (cgroup
			-- mode) its cgroup, where only B's server lives
			finish(pid)
			assert.are.same(wantB, pid.flows)
			assert.are.same(wantB, pid.events)
			assert.are.equal(#pB, pid.stats.seen)

			-- no scope: every namespace the hook sees, each flow with its inode
			finish(all)
			local ns_of = function(k)
				return wantA[k] and inoA or wantB[k] and inoB or inoHere
			end
			local want = merge(wantA, wantB, wantR)
			assert.are.same(want, all.flows)
			assert.are.same(want, all.events)
			assert_netns(all, want, ns_of)
			assert.are.equal(inoHere, ns_of(next(wantR)))
			if mode == "tc" then
				-- p.probe names each interface in its own namespace
				assert.are.same({ ["tc/ingress:" .. A.sdev] = true, ["tc/ingress:" .. B.sdev] = true,
					["tc/ingress:lo"] = true }, all.probes)
			end

			-- the namespaces created after it started: C's segments
			finish(late)
			local wantC = net.by_flow(pC)
			assert.are.same(wantC, late.flows)
			assert.are.same(wantC, late.events)
			assert_netns(late, wantC, function() return inoC end)

			-- cgroup = G: only B's server's segments
			if mode == "cgroup" then
				finish(cg)
				assert.are.same(wantB, cg.flows)
				assert.are.same(wantB, cg.events)
				assert.are.same({ [gid] = true }, cg.cgroups.syn)
				assert.are.same({ [gid] = true }, cg.cgroups.rest)
				assert.are.same({ [gid] = true }, pid.cgroups.rest)
			elseif cg then
				finish(cg)
				local wantRest = net.by_flow(pB, function(p) return p.flags & 0x12 ~= 0x02 end)
				assert.are.same(wantRest, cg.flows)
				assert.are.same(wantRest, cg.events)
				assert.is_nil(cg.cgroups.syn)
				assert.are.same({ [gid] = true }, cg.cgroups.rest)
				-- unscoped: a SYN has no socket yet (cgroup 0), the rest have B's
				assert.are.same({ [0] = true }, pid.cgroups.syn)
				assert.are.same({ [gid] = true }, pid.cgroups.rest)
			else
				assert.are.same({ [0] = true }, pid.cgroups.rest) -- tc: before any socket
			end
			net.say("[%s] scopes: netns=A %d segs, container=PID %d, unscoped %d (3 netns), late netns C %d, cgroup=G %s; tcpdump A/B/here/C %d/%d/%d/%d",
				mode, total(scoped.flows), total(pid.flows), total(all.flows), total(late.flows),
				cg and tostring(total(cg.flows)) or "refused", #pA, #pB, total(wantR), #pC)

			-- all closed: none of their links is left, nor a tc filter anywhere
			-- (tc on a kernel without tcx holds netlink filters, no link: checked below)
			if mode ~= "tc" then assert.is_true(#held >= 5) end
			for _, id in ipairs(held) do assert.is_false(net.link_exists(id), "link " .. id .. " left") end
			if mode == "tc" then
				for _, x in ipairs{ { A.server, A.sdev }, { A.client, A.cdev }, { B.server, B.sdev },
					{ B.client, B.cdev }, { C.server, C.sdev }, { C.client, C.cdev }, { nil, "lo" } } do
					for _, dev in ipairs{ "lo", x[2] } do
						local f = net.tc_filters(dev, x[1])
						assert.is_nil(f:find("ti_tc_ingress", 1, true), tostring(x[1]) .. " " .. dev .. ": " .. f)
					end
				end
			end
		end)
	end

	if net.has_mode("tc") then
		it("[tc] netlink failing at each step of a scoped attach and detach: back in our netns, nothing left", function()
			local defer = net.cleanups(finally)
			local A = net.netns_pair()
			defer(function() A:destroy() end)
			local here = inode("/proc/self/ns/net")
			local script = net.tmpfile(".lua")
			net.write_file(script, ([[
package.path = %q .. package.path
package.cpath = %q .. package.cpath
local tcpinspect = require "tcpinspect"
local s, err = tcpinspect.open{ mode = "tc", netns = %q, events = false }
print("SCOPED", s and "ok" or err)
if s then s:close() end
-- whatever failed, this thread is back in its own namespace (a child
-- process starts in its parent thread's)
local f = io.popen("stat -L -c %%i /proc/self/ns/net")
print("NETNS", f:read("l"))
f:close()
]]):format(net.ROOT .. "/lua/?.lua;" .. net.ROOT .. "/spec/?.lua;", net.ROOT .. "/build/?.so;", A.server))
			local function ours_left()
				local left = {}
				for _, dev in ipairs{ "lo", A.sdev } do
					local f = net.tc_filters(dev, A.server)
					if f:find("ti_tc_ingress", 1, true) then left[#left + 1] = dev .. ": " .. f end
				end
				return table.concat(left, "\n")
			end
			local failed, k, swept = 0, 0, 0
			local injected
			repeat
				k = k + 1
				local _, out = net.sh(("env TCPINSPECT_TC_NO_TCX=1 TI_FAILINJ_REPORT=1 TI_FAILINJ_NL_NTH=%d LD_PRELOAD=%s/build/failinj.so %s %s"):format(
					k, net.ROOT, net.LUA, net.q(script)))
				assert.matches("NETNS\t" .. here .. "\n", out, 1, true)
				local scoped = out:match("SCOPED\t([^\n]*)")
				injected = tonumber(out:match("netlink operations, (%d+) failed"))
				assert(scoped and injected, out)
				if scoped ~= "ok" then
					failed = failed + 1
					assert.matches("^ENOBUFS: tc: ", scoped)
				end
				-- what a failed detach left (its owner is gone), the next scoped
				-- session sweeps (a session per step is slow under emulation)
				if ours_left() ~= "" then
					local s = net.open{ mode = "tc", netns = A.server, events = false }
					s:close()
					swept = swept + 1
				end
				assert.are.equal("", ours_left())
			until injected == 0 or k >= 60
			assert.are.equal(0, injected, "more than 60 netlink operations?")
			assert.is_true(failed >= 4, "only " .. failed .. " netlink failures hit the scoped attach")
			net.say("[tc] scoped attach with netlink failing at each of %d operations (%d failed opens, %d sweeps): always back in our netns, no filter left",
				k - 1, failed, swept)
		end)
	end

	if net.has_mode("tc") then
		it("[tc] unscoped without CAP_SYS_ADMIN: each namespace it cannot enter is in session.probes with the reason", function()
			local defer = net.cleanups(finally)
			local A = net.netns("p")
			defer(function() A:destroy() end)
			local inoA = inode("/run/netns/" .. A.name)
			local code = ([[package.cpath=%q..package.cpath package.path=%q..package.path
				local s = assert(require("tcpinspect").open{ mode = "tc", events = false })
				for k, v in pairs(s.probes) do print(k .. "=" .. v) end
				s:close()]]):format(net.ROOT .. "/build/?.so;", net.ROOT .. "/lua/?.lua;")
			local _, out = net.sh("setpriv --bounding-set=-all,+bpf,+net_admin,+perfmon lua5.4 -e " .. net.q(code))
			assert.matches("tc/ingress:lo=attached", out, 1, true)
			assert.matches(("tc/ingress:@%d=skipped: entering network namespace %d (/run/netns/%s) failed: Operation not permitted; setns needs CAP_SYS_ADMIN"):format(
				inoA, inoA, A.name), out, 1, true)
			net.say("[tc] without CAP_SYS_ADMIN: namespace %d listed as not entered", inoA)
		end)
	end

	it("netns given as an inode: dev and filter.dev name interfaces of that namespace, in every mode", function()
		local defer = net.cleanups(finally)
		local A = net.netns_pair()
		defer(function() A:destroy() end)
		local inoA = inode("/run/netns/" .. A.server)
		-- A's device exists only in A: named here, it would not be found
		assert.is_false(net.sh("ip link show dev " .. A.sdev .. " >/dev/null"))
		-- (that the filter then selects A's segments on it: the scopes spec above)
		for _, mode in ipairs(net.modes()) do
			local s = net.open{ mode = mode, netns = inoA, events = false, filter = { dev = A.sdev } }
			s:set_filter{ dev = A.sdev, dport = 80 }
			s:close()
			local ok, err = pcall(tcpinspect.open, { mode = mode, netns = inoA, filter = { dev = "nosuch0" } })
			assert.is_false(ok)
			assert.matches("no interface named 'nosuch0' in the session's network namespace", tostring(err))
		end
		if net.has_mode("tc") then
			local s = net.open{ mode = "tc", netns = inoA, events = false, dev = A.sdev }
			local names = {}
			for k in pairs(s.probes) do names[#names + 1] = k end
			assert.are.same({ "tc/ingress:" .. A.sdev }, names)
			s:close()
		end
		net.say("netns=%d (an inode): %s named in it in %s", inoA, A.sdev, table.concat(net.modes(), ", "))
	end)

	it("names the option for a PID that does not exist, a path that is not a netns, a cgroup v1 directory", function()
		local defer = net.cleanups(finally)
		local function raises(opts, option, pattern)
			local ok, err = pcall(tcpinspect.open, opts)
			assert.is_false(ok)
			assert.are.equal(option, err.option)
			assert.matches(pattern, tostring(err))
		end
		local f = assert(io.open("/proc/sys/kernel/pid_max"))
		local beyond = tonumber(f:read("l")) + 1
		f:close()
		raises({ container = beyond }, "container", "option 'container': no process " .. beyond)
		raises({ netns = "/proc/self/ns/mnt" }, "netns", "'/proc/self/ns/mnt' is not a network namespace %(it is another kind")
		raises({ netns = "/proc/self/status" }, "netns", "'/proc/self/status' is not a network namespace")
		raises({ netns = "/proc/self/ns" }, "netns", "'/proc/self/ns' is not a network namespace")
		-- a cgroup v1 directory: an existing v1 mount, else a named v1 hierarchy of our own
		local _, v1 = net.sh("awk '$3 == \"cgroup\" { print $2; exit }' /proc/mounts")
		v1 = v1:match("[^\n]+")
		if not v1 then
			v1 = net.tmpfile(".v1")
			net.must("mkdir " .. v1 .. " && mount -t cgroup -o none,name=ticont" .. net.getpid() .. " cgroup " .. v1)
			defer(function() net.sh("umount " .. v1) end)
		end
		raises({ cgroup = v1 }, "cgroup", "option 'cgroup': '" .. v1:gsub("%p", "%%%0") ..
			"' is a cgroup v1 directory; tcpinspect needs cgroup v2")
		raises({ cgroup = "/proc" }, "cgroup", "'/proc' is not a cgroup v2 directory")
		-- an inode no process holds: it cannot be entered (an environment
		-- failure, in every mode: its interfaces could not be named)
		for _, mode in ipairs(net.modes()) do
			local s, err, errno = tcpinspect.open{ mode = mode, netns = 4294967295 }
			assert.is_nil(s)
			assert.are.equal(2, errno)
			assert.matches("^ENOENT: option 'netns': no /run/netns entry or process is in network namespace 4294967295, " ..
				"so it cannot be entered; give netns= a path", err)
		end
		-- cgroup mode reads a socket's netns only with CAP_PERFMON: scoped by
		-- netns without it, it fails (EPERM) and says what to do
		local code = ([[package.cpath="build/?.so;"..package.cpath
			local s, err, errno = require("tcpinspect.core").open{ mode = "cgroup", events = false, netns = %d }
			print(s and "OK" or ("FAIL " .. errno .. " " .. err))]]):format(inode("/proc/self/ns/net"))
		local _, out = net.sh("setpriv --bounding-set=-all,+bpf,+net_admin lua5.4 -e " .. net.q(code))
		assert.matches("^FAIL 1 EPERM: cgroup: scoping cgroup mode to a network namespace %(netns=%) reads each " ..
			"socket's namespace, which needs CAP_PERFMON", out)
		net.say("bad scopes: no process %d, not a netns, cgroup v1 at %s: each raised naming its option", beyond, v1)
	end)
end)
