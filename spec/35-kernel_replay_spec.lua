-- SPDX-License-Identifier: GPL-2.0-only
-- Kernel spec: a replay of a capture gives the same script output, maps and
-- counters as the live session that saw the traffic (issue 12).
--
-- One scene for every mode: a private network namespace; tcpdump -s 0 -U on
-- its lo (every segment once, -Q in); five examples run live at the same
-- time in each mode (TCPINSPECT_EXPECT_MODES) through the CLI, each under
-- spec/support/example_state.lua (which prints, after the example's own
-- output, every map entry and every counter); the fixed traffic mix of
-- spec/support/traffic_child.lua.  Then each example runs again on
-- tcpdump's file with `tcpinspect -r` as nobody with no capabilities
-- (setpriv), and, per mode, the live and replayed outputs must be the same
-- text, but for:
--   - new_connections' clock (NEW HH:MM:SS.us) and handshake time: the live
--     ones are the kernel's receive times, the replay's tcpdump's timestamps;
--     and its lines' order, the order the connections ended in (a live
--     run's walk ends them as they fall due, a replay at the end of the file);
--     and whether a connection that got no FIN or RST (the scan's SYNs)
--     ended `idle` or was still `open`: that is when each session stopped
--     (5 s after a SYN alone: a TCG guest's capture spans that, its live
--     run was stopped before), and so the conns_expired counter (the timed
--     ends; the rest end at the stop, uncounted there), as elapsed= below;
--   - END elapsed= and port_bytes' rate=: the live session runs from its
--     attach to its interruption, the replay from the capture's first segment
--     to its last (capture time), so the seconds differ and the rates with them.
-- The windows (port_scan --window, the reports' --interval) are longer than
-- a run, so the reports come at exit only, as both sessions see all of it:
-- a window's phase is the live session's start live, the capture's first
-- segment in a replay, and would cut the traffic at different places.
--
-- fentry, kprobe and tc see every segment that arrives: live == replay of
-- the whole capture.  cgroup_skb sees only the segments that reach a socket
-- (doc/modes.md): of this mix, all but the scan's 30 SYNs to closed ports
-- (the RSTs back do reach the connecting sockets).  So in cgroup mode the
-- live session must equal the replay of the capture without those SYNs
-- (tcpdump -r's own filter writes that file), and the replay of the whole
-- capture must count exactly 30 segments more.
local net = require "support.net"
local cli = require "support.cli"
local socket = require "socket"

-- The modes: those that must work here (TCPINSPECT_EXPECT_MODES); in a guest
-- only the function probes: tc and cgroup run the same code on the host,
-- and under emulation each mode's scene and replays take minutes
local MODES = {}
for _, m in ipairs(net.modes()) do
	if not net.IN_VM or m == "fentry" or m == "kprobe" then MODES[#MODES + 1] = m end
end

local EXAMPLES = {
	{ name = "new_connections" },
	{ name = "port_scan", args = { "--window", "3600" } },
	{ name = "top_talkers", args = { "--interval", "3600" } },
	{ name = "port_bytes", args = { "--interval", "3600" } },
	{ name = "payload_hist" },
}
local STATE = net.ROOT .. "/spec/support/example_state.lua"
local unpriv = require "support.unpriv"
local UNPRIV = unpriv.SETPRIV
-- what nobody runs (the command, example_state.lua, the examples) comes from
-- a world-readable copy, never from the checkout (a clone in root's 0700
-- home): made once, removed by the describe's teardown
local ucopy
local function unpriv_dir()
	ucopy = ucopy or unpriv.copy(net.ROOT, net.BUILD)
	return ucopy
end
-- the scan's SYNs: no socket behind them
local SOCKETLESS = "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn and dst portrange 9100-9129"
local function socketless(p) return p.flags & 0x12 == 0x02 and p.dport >= 9100 and p.dport <= 9129 end

local function normalize(out)
	out = out:gsub("\nNEW %d%d:%d%d:%d%d%.%d+ ", "\nNEW <clock> "):gsub("^NEW %d%d:%d%d:%d%d%.%d+ ", "NEW <clock> ")
		:gsub("rate=[^\n]-/s", "rate=<rate>"):gsub("elapsed=[%d.]+", "elapsed=<s>"):gsub("handshake=[%d.]+", "handshake=<s>")
		:gsub("end=open", "end=<timed>"):gsub("end=idle", "end=<timed>")
		:gsub("conns_expired=%d+", "conns_expired=<timed>")
	-- new_connections' lines come in the order the connections ended: the
	-- walk's, which the timing of a live run's ends decides; compared as a set
	local news, rest = {}, {}
	for line in out:gmatch("[^\n]+") do
		if line:match("^NEW ") then news[#news + 1] = line else rest[#rest + 1] = line end
	end
	table.sort(news)
	return table.concat(news, "\n") .. "\n--\n" .. table.concat(rest, "\n")
end

local function state(out)
	local st = {}
	for k, v in (out:match("STATE stats ([^\n]*)") or ""):gmatch("(%w+)=(%d+)") do st[k] = tonumber(v) end
	return st
end

-- The exit status a background shell wrote into a file ("N\n"), or nil
-- (not yet, or not all of it yet)
local function exited(rcfile)
	local s = net.read_file(rcfile)
	return s and s:match("^%d+\n$")
end

-- `tcpinspect -r FILE` running an example under example_state.lua, as
-- nobody: every (file, example) pair at once, in the background (the
-- guests have two CPUs).  Returns the outputs by file and example name.
local function replay_all(files)
	local runs = {}
	for _, file in ipairs(files) do
		for _, ex in ipairs(EXAMPLES) do
			local dir = unpriv_dir()
			local args = { "-q", "-r", file, dir .. "/spec/support/example_state.lua" }
			for _, a in ipairs(ex.args or {}) do args[#args + 1] = a end
			local r = { file = file, ex = ex, out = net.tmpfile(".out"), err = net.tmpfile(".err"),
				rc = net.tmpfile(".rc") }
			local parts = { net.q(dir .. "/build/bin/tcpinspect") }
			for _, a in ipairs(args) do parts[#parts + 1] = net.q(a) end
			r.cmd = UNPRIV .. "env TCPINSPECT_SPEC_EXAMPLE=" .. net.q(dir .. "/examples/" .. ex.name .. ".lua") .. " " ..
				table.concat(parts, " ")
			r.pid = net.spawn(("sh -c %s"):format(net.q(("%s >%s 2>%s; echo $? >%s"):format(r.cmd, net.q(r.out),
				net.q(r.err), net.q(r.rc)))))
			runs[#runs + 1] = r
		end
	end
	local res = {}
	for _, r in ipairs(runs) do
		local rc = net.wait_until(function() return exited(r.rc) end, 120)
		if not rc then net.kill(r.pid, "KILL") end
		assert(rc == "0\n", ("replay of %s on %s failed (exit %s): %s\n%s"):format(r.ex.name, r.file,
			tostring(rc), net.read_file(r.out) or "", net.read_file(r.err) or ""))
		res[r.file] = res[r.file] or {}
		res[r.file][r.ex.name] = net.read_file(r.out)
	end
	return res
end

-- tshark's fields of every TCP segment (addresses, ports, raw seq and ack,
-- flags, payload length; and the IP lengths, TTL/hop limit, window and
-- checksum, read from the captured bytes), one line each
local TSHARK_FIELDS = { "ip.src", "ipv6.src", "ip.dst", "ipv6.dst", "tcp.srcport", "tcp.dstport",
	"tcp.seq_raw", "tcp.ack_raw", "tcp.flags", "tcp.len", "ip.len", "ipv6.plen", "ip.ttl", "ipv6.hlim",
	"tcp.window_size_value", "tcp.checksum" }
local function tshark_cmd(file, first)
	return ("tshark -r %s -n -Y tcp -T fields -E separator=/s -e %s%s"):format(file, first and (first .. " -e ") or "",
		table.concat(TSHARK_FIELDS, " -e "))
end
local function fields_of(text)
	local t = {}
	for l in text:gmatch("[^\n]+") do t[#t + 1] = l end
	table.sort(t) -- the ring's order across CPUs may differ from tcpdump's
	return t
end
-- The fields of several pcap files, by file, read by one tshark as nobody
-- (tshark takes a minute or two to start in a TCG guest): the files joined
-- by mergecap -I none, each file's frames on its own interface.
local function tshark_files(files)
	local merged = net.tmpfile(".pcapng")
	local qs = {}
	for i, f in ipairs(files) do qs[i] = net.q(f) end
	net.must(("mergecap -a -I none -w %s %s 2>&1"):format(net.q(merged), table.concat(qs, " ")))
	local errf = net.tmpfile(".err")
	local ok, out = net.sh(UNPRIV .. "env HOME=/nonexistent " .. tshark_cmd(net.q(merged), "frame.interface_id") ..
		" 2>" .. net.q(errf))
	assert(ok, "tshark -r " .. merged .. ": " .. (net.read_file(errf) or ""))
	local by = {}
	for i = 1, #files do by[i] = {} end
	for id, rest in out:gmatch("(%d+) ([^\n]*)") do
		local t = assert(by[tonumber(id) + 1], "interface " .. id)
		t[#t + 1] = rest
	end
	local res = {}
	for i, f in ipairs(files) do
		table.sort(by[i])
		res[f] = by[i]
	end
	return res
end

-- The traffic, watched live at the same time by the five examples in each
-- mode, by `watch -w` in each mode and by tcpdump.  Returns {outs = the
-- live outputs by mode and example name, file = tcpdump's file, pkts = its
-- packets, wfiles = the -w file by mode, pipe = {mode, fields}}.  (One scene for every mode: under
-- emulation each start of the CLI takes seconds.)
local function live(modes)
	local fns = {}
	local function defer(fn) fns[#fns + 1] = fn end
	local ok, a = pcall(function()
		local ns = net.netns("rp")
		defer(function() ns:destroy() end)
		local cg
		for _, mode in ipairs(modes) do
			if mode == "cgroup" then
				local _, root = net.sh("awk '$3 == \"cgroup2\" { print $2; exit }' /proc/mounts")
				root = assert(root:match("[^\n]+"), "no cgroup2 mount")
				cg = ("%s/tireplay-%d-%d"):format(root, net.getpid(), math.random(1e6))
				net.must("mkdir " .. net.q(cg))
				defer(function() net.sh("rmdir " .. net.q(cg)) end)
			end
		end
		local cap = net.tcpdump { netns = ns.name, snaplen = 0 }
		defer(function() if net.alive(cap.pid) then net.kill(cap.pid, "KILL") end end)
		-- per mode, the five examples and `watch -w FILE`, and in the first
		-- mode that sees every segment `watch -w - | tshark -r -` (ended by
		-- -c 120: the mix) on the host (under emulation tshark takes minutes
		-- to start); a mode's processes are ready before the next mode's
		-- start (two emulated CPUs starve a crowd of BPF loads)
		local procs, wfiles, watchers, pipe = {}, {}, {}, nil
		local function start(mode, args)
			-- after the command or the script: "--mode M" (and "--cgroup DIR");
			-- cgroup runs outside the namespace (ip netns exec mounts its own
			-- /sys, without the cgroup): the traffic's sockets are in the cgroup
			table.insert(args, 2, mode)
			table.insert(args, 2, "--mode")
			if mode == "cgroup" then
				table.insert(args, 4, cg)
				table.insert(args, 4, "--cgroup")
			end
			local example = args.example
			args.example = nil
			local p = cli.start(args, { netns = mode ~= "cgroup" and ns.name or nil,
				env = example and "TCPINSPECT_SPEC_EXAMPLE=" .. net.ROOT .. "/examples/" .. example .. ".lua" })
			defer(function() p:kill() end)
			return p
		end
		for _, mode in ipairs(modes) do
			procs[mode] = {}
			for _, ex in ipairs(EXAMPLES) do
				local args = { STATE, example = ex.name }
				for _, x in ipairs(ex.args or {}) do args[#args + 1] = x end
				procs[mode][ex.name] = start(mode, args)
			end
			wfiles[mode] = net.tmpfile(".pcap")
			watchers[mode] = start(mode, { "watch", "-w", wfiles[mode] })
			if not pipe and mode ~= "cgroup" and not net.IN_VM then
				pipe = { mode = mode, out = net.tmpfile(".txt"), err = net.tmpfile(".err"), rc = net.tmpfile(".rc") }
				local sh = ("%s watch --mode %s -w - -c 120 2>%s | HOME=/nonexistent %s >%s 2>/dev/null; echo $? >%s"):format(
					net.q(cli.BIN), mode, net.q(pipe.err), tshark_cmd("-"), net.q(pipe.out), net.q(pipe.rc))
				pipe.pid = net.spawn("exec ip netns exec " .. ns.name .. " sh -c " .. net.q(sh))
				defer(function() if net.alive(pipe.pid) then net.kill(pipe.pid, "KILL") end end)
			end
			for _, ex in ipairs(EXAMPLES) do procs[mode][ex.name]:ready(60) end
			watchers[mode]:ready(60)
		end
		if pipe then
			assert(net.wait_until(function()
				return (net.read_file(pipe.err) or ""):find("Ctrl-C to stop", 1, true) or exited(pipe.rc)
			end, 60), "watch -w - | tshark did not start")
		end
		-- the traffic, from inside the namespace (and the cgroup)
		local cmd = "exec ip netns exec " .. ns.name .. " " .. net.lua_cmd(net.ROOT .. "/spec/support/traffic_child.lua")
		if cg then cmd = "echo $$ > " .. net.q(cg .. "/cgroup.procs") .. " && " .. cmd end
		local done, out = net.sh("sh -c " .. net.q(cmd) .. " 2>&1")
		assert(done and out:find("DONE", 1, true), "traffic: " .. out)
		local pkts = cap:stop()
		assert(cap.dropped == 0, "tcpdump dropped " .. tostring(cap.dropped) .. " segments")
		-- the hooks ran as the segments arrived; let the rings be read (a poll
		-- is never more than 100 ms away), then end the sessions
		net.sleep(net.scale(0.5))
		local outs = {}
		for _, mode in ipairs(modes) do
			for _, ex in ipairs(EXAMPLES) do procs[mode][ex.name]:interrupt() end
			watchers[mode]:interrupt()
		end
		for _, mode in ipairs(modes) do
			outs[mode] = {}
			for _, ex in ipairs(EXAMPLES) do
				local r = procs[mode][ex.name]:wait(60)
				assert(r.code == 0, ("[%s] %s: exit %d: %s"):format(mode, ex.name, r.code, r.err))
				outs[mode][ex.name] = r.out
			end
			local r = watchers[mode]:wait(60)
			assert(r.code == 0 and r.out == "", ("[%s] watch -w: exit %d: %s%s"):format(mode, r.code, r.out, r.err))
		end
		if pipe then
			-- the count ends watch, the end of the pipe ends tshark
			assert(net.wait_until(function() return exited(pipe.rc) end, 30),
				"watch -w - -c 120 | tshark did not end: " .. (net.read_file(pipe.err) or ""))
			assert(net.read_file(pipe.rc) == "0\n", "watch -w - | tshark: " .. (net.read_file(pipe.err) or ""))
			pipe.fields = fields_of(net.read_file(pipe.out))
		end
		-- -w files are created 0600 (issue 19): readable for the replays,
		-- which run as nobody
		for _, f in pairs(wfiles) do net.must("chmod 644 " .. net.q(f)) end
		return { outs = outs, file = cap.file, pkts = pkts, wfiles = wfiles, pipe = pipe }
	end)
	for i = #fns, 1, -1 do pcall(fns[i]) end
	if not ok then error(a, 0) end
	return a
end

describe("#kernel replay equals live", function()
	teardown(function() unpriv.remove(ucopy) end)

	it("replays run as nobody with no capabilities", function()
		local ok, out = net.sh(UNPRIV .. "cat /proc/self/status")
		assert(ok, out)
		assert.matches("\nUid:\t65534\t65534\t65534\t65534\n", out, 1, true)
		assert.matches("\nCapEff:\t0000000000000000\n", out, 1, true)
		assert.matches("\nCapPrm:\t0000000000000000\n", out, 1, true)
		assert.matches("\nCapBnd:\t0000000000000000\n", out, 1, true)
	end)

	-- the live scene, once for every mode (its error fails each mode's test)
	-- (then the capture without the socketless segments, for cgroup,
	-- tshark's fields of every file and the replays of every file)
	local scene, scene_err
	local function get_scene()
		if not scene and not scene_err then
			local ok, r = pcall(function()
				local t0 = socket.gettime()
				local sc = live(MODES)
				local t1 = socket.gettime()
				local files = { sc.file }
				for _, mode in ipairs(MODES) do
					if mode == "cgroup" then
						sc.socket_file = net.tmpfile(".pcap")
						net.must(("tcpdump -r %s -w %s %s 2>&1"):format(net.q(sc.file), net.q(sc.socket_file),
							net.q("not (" .. SOCKETLESS .. ")")))
						files[#files + 1] = sc.socket_file
					end
				end
				for _, mode in ipairs(MODES) do files[#files + 1] = sc.wfiles[mode] end
				sc.fields = tshark_files(files)
				local t2 = socket.gettime()
				sc.replays = replay_all(files)
				net.say("live scene (%s) %.1f s, tshark %.1f s, %d replays %.1f s", table.concat(MODES, ","), t1 - t0,
					t2 - t1, #files * #EXAMPLES, socket.gettime() - t2)
				return sc
			end)
			if ok then scene = r else scene_err = r end
		end
		assert(scene, scene_err)
		return scene
	end

	for _, mode in ipairs(MODES) do
		it(("[%s] five examples: the same output, maps and counters from the live run and the replay"):format(mode),
			function()
				local sc = get_scene()
				local outs, file, pkts = sc.outs[mode], sc.file, sc.pkts
				-- the capture holds the mix: 3 + 1 + 2 conversations and 30 scan SYNs
				local syns = net.count(pkts, function(p) return p.flags & 0x12 == 0x02 end)
				assert.are.equal(36, syns)
				assert.are.equal(30, net.count(pkts, socketless))
				assert.are.equal(2, net.count(pkts, function(p) return p.family == 6 and p.flags & 0x12 == 0x02 end))
				local want_file, left_out = file, 0
				if mode == "cgroup" then want_file, left_out = sc.socket_file, 30 end
				-- tcpinspect's own -w file: what tshark reads in it is, segment for
				-- segment, what it reads in tcpdump's capture (less the socketless)
				local want_fields = sc.fields[want_file]
				assert.are.equal(#pkts - left_out, #want_fields)
				assert.are.same(want_fields, sc.fields[sc.wfiles[mode]], mode .. ": -w file vs tcpdump")
				if sc.pipe and sc.pipe.mode == mode then
					assert.are.same(want_fields, sc.pipe.fields, mode .. ": watch -w - | tshark -r - vs tcpdump")
				end
				for _, ex in ipairs(EXAMPLES) do
					-- and the replay of the -w file is the live session too
					assert.are.equal(normalize(outs[ex.name]), normalize(sc.replays[sc.wfiles[mode]][ex.name]),
						("[%s] %s: live (first) vs replay of watch -w's file"):format(mode, ex.name))
					local l, r = outs[ex.name], sc.replays[want_file][ex.name]
					assert.are.equal(normalize(l), normalize(r), ("[%s] %s: live (first) vs replay"):format(mode, ex.name))
					-- what the live session counted is what the capture holds
					local st = state(l)
					assert.are.equal(#pkts - left_out, st.seen, ex.name .. ": seen")
					assert.are.equal(0, st.dropped, ex.name)
					if left_out > 0 then
						-- the whole capture: exactly the socketless segments more
						local full = state(sc.replays[file][ex.name])
						assert.are.equal(st.seen + left_out, full.seen, ex.name .. ": seen, whole capture")
					end
				end
				-- not a comparison of two empty runs
				local nc = outs.new_connections
				assert.are.equal(36 - left_out, #cli.grep(nc, "NEW "), nc)
				assert.matches("SUMMARY new-connections count=" .. (36 - left_out) .. "\n", nc, 1, true)
				if left_out == 0 then
					assert.matches("ALERT port-scan src=127.0.0.9 ports=30 window=3600s\n", outs.port_scan, 1, true)
				else
					assert.is_nil(outs.port_scan:find("ALERT", 1, true), outs.port_scan)
				end
				assert.matches("TOP rank=1 src=127.0.0.1 bytes=", outs.top_talkers, 1, true)
				assert.matches("\n%[4K, 8K%) +2 |", outs.payload_hist)
				net.say("[%s] %d segments captured; 5 examples: live == replay of tcpdump's and of -w's file " ..
					"(as nobody)%s; tshark: -w file == tcpdump's%s", mode, #pkts,
					left_out > 0 and (", less the %d socketless SYNs"):format(left_out) or "",
					sc.pipe and sc.pipe.mode == mode and ", and watch -w - | tshark -r -" or "")
			end)
	end
end)
