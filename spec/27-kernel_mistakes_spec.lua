-- SPDX-License-Identifier: GPL-2.0-only
-- A new user's first hour (issue 11), the items that need a live session:
-- run as root on a real kernel, in tc mode (the host's mode; the guests
-- too), on a fresh 127.X.Y.Z address and port filtered in the kernel so
-- that other tests on the machine do not count.  Kernel-independent items
-- are in spec/05-mistakes_spec.lua.
local net = require "support.net"
local cli = require "support.cli"
local dkjson = require "dkjson"

local THIS = "spec/27-kernel_mistakes_spec.lua"

local function line()
	return debug.getinfo(2, "l").currentline
end

local function script(code)
	local f = net.tmpfile(".lua")
	net.write_file(f, code)
	return f
end

local function esc(s)
	return (s:gsub("%p", "%%%0"))
end

-- A session on a fresh address and port, and a server there.
local function setup(opts)
	local addr, port = net.addr4(), net.port()
	opts = opts or {}
	opts.mode = opts.mode or "tc"
	opts.filter = { host = addr, port = port }
	local s = net.open(opts)
	return s, addr, port
end

describe("a new user's mistakes, live #kernel #cli", function()
	it("p.dprot in on_packet: the script's line, a suggestion, a short traceback; on_exit runs", function()
		local addr, port = net.addr4(), net.port()
		local f = script(table.concat({
			'on_exit(function(_, why) print("EXIT", why) end)',
			'on_packet(function(p)',
			'  print(p.dprot)',
			'end)',
		}, "\n"))
		local p = cli.start { f, "--mode", "tc", "--host", addr, "--port", tostring(port), "--duration", "20" }
		local ok, err = pcall(function()
			p:ready()
			net.connect_closed(addr, port)
			local r = p:wait()
			assert.are.equal(1, r.code, r.err)
			assert.are.equal("EXIT\terror\n", r.out)
			local lines = cli.lines(r.err)
			assert.matches("^tcpinspect: " .. esc(f) .. ": incoming TCP segments, tc mode %(.*%); Ctrl%-C to stop$",
				lines[1])
			assert.are.same({
				("%s:3: tcpinspect: packet has no field 'dprot'; did you mean 'dport'?"):format(f),
				"stack traceback:",
				("\t%s:3: in function <%s:2>"):format(f, f),
			}, { table.unpack(lines, 2) })
		end)
		p:kill()
		assert(ok, err)
	end)

	it("v.byte on a map value: the caller's line and a suggestion", function()
		local s, addr, port = setup { events = false }
		local srv = net.server(addr, port)
		net.conversation(srv, addr, port, { data = "hello" })
		srv:close()
		local n = 0
		for _, v in s:map("flows"):pairs() do
			n = n + 1
			assert.is_true(v.bytes >= 0)
			local ok, err = pcall(function() return v.byte end)
			local l = line() - 1
			assert.is_false(ok)
			assert.are.equal(("%s:%d: tcpinspect: map 'flows' value has no field 'byte'; did you mean 'bytes'? " ..
				"(fields: packets, bytes, first_ts, last_ts, flags_seen)"):format(THIS, l), err)
		end
		assert.is_true(n >= 2)
		for k in s:map("sources"):pairs() do
			local _, err = pcall(function() return k.addr end)
			assert.matches("tcpinspect: map 'sources' key has no field 'addr'; did you mean 'saddr'%?", err)
		end
		s:close()

		-- in a script under the CLI: the script's line
		local addr2, port2 = net.addr4(), net.port()
		local f = script(table.concat({
			'on_exit(function()',
			'  for _, v in map("ports"):pairs() do',
			'    printf("%d", v.byte)',
			'  end',
			'end)',
		}, "\n"))
		local p = cli.start { f, "--mode", "tc", "--host", addr2, "--port", tostring(port2), "--duration", "20" }
		local ok, err = pcall(function()
			p:ready()
			net.connect_closed(addr2, port2)
			net.sleep(0.2)
			p:interrupt()
			local r = p:wait()
			assert.are.equal(1, r.code, r.err)
			assert.matches("\n" .. esc(f) .. ":3: tcpinspect: map 'ports' value has no field 'byte'; did you mean 'bytes'%?",
				r.err)
			assert.is_nil(r.err:find("script.lua", 1, true), r.err)
		end)
		p:kill()
		assert(ok, err)
	end)

	it("on_packet on a session opened with events = false raises in the library", function()
		local s = setup { events = false }
		assert.is_false(s.events)
		local ok, err = pcall(function() s:on_packet(function() end) end)
		local l = line() - 1
		assert.is_false(ok)
		assert.are.equal(("%s:%d: tcpinspect: on_packet: this session was opened with events = false, so no packet " ..
			"will be delivered; open it with events = true"):format(THIS, l), err)
		s:on_packet(nil) -- clearing is fine
		s:close()
		-- the prelude says the same, at the script's line
		local f = script('open{ events = false }\non_packet(function(p) end)\n')
		local r = cli.run { f, "--mode", "tc", "--host", net.addr4(), "--duration", "5" }
		assert.are.equal(1, r.code)
		assert.matches("\n" .. esc(f) .. ":2: tcpinspect: on_packet: this session was opened with events = false", r.err)
	end)

	it("stop() inside a callback ends delivery after it; the rest stays in the ring", function()
		local s, addr, port = setup { wakeup = 1 }
		local srv = net.server(addr, port)
		net.conversations(srv, addr, port, 3, { data = "ping" })
		srv:close()
		local st = net.stats(s)
		assert.is_true(st.delivered >= 20, "only " .. st.delivered .. " records")
		local seen = 0
		s:on_packet(function() seen = seen + 1; s:stop() end)
		-- each poll delivers exactly one record: the one whose callback stopped
		for i = 1, 3 do
			assert.are.equal(1, s:poll(0))
			assert.are.equal(i, seen)
		end
		-- without stop, the rest: nothing lost
		s:on_packet(function() seen = seen + 1 end)
		net.drain(s)
		st = net.stats(s)
		assert.are.equal(st.delivered, seen)
		assert.are.equal(0, st.dropped)
		net.identity(st)
		-- and run() returns "stopped" after that callback
		local srv2 = net.server(addr, port)
		net.conversation(srv2, addr, port)
		srv2:close()
		local before = seen
		s:on_packet(function() seen = seen + 1; s:stop() end)
		local n, why = s:run { duration = 5 }
		assert.are.equal("stopped", why)
		assert.are.equal(1, n)
		assert.are.equal(before + 1, seen)
		s:on_packet(function() seen = seen + 1 end)
		net.drain(s)
		st = net.stats(s)
		assert.are.equal(st.delivered, seen)
		net.identity(st)
		s:close()
	end)

	it("every command prints the 'incoming' header and the same summary line", function()
		local addr, port = net.addr4(), net.port()
		-- (seen and filtered count the machine's other traffic too)
		local summary = "^tcpinspect: (.-) in [%w%.]+ %(duration%); seen %d+, filtered %d+, matched 0, " ..
			"sampled_out 0, delivered 0, dropped 0, errors %d+, evicted_flows %d+, evicted_sources %d+, evicted_drops 0, busy 0$"
		local f = script('on_packet(function() end)\n')
		for _, c in ipairs { { "watch", "%d+ packets printed" }, { "top", "%d+ reports printed" },
			{ "stats", "%d+ reports printed" }, { f, esc(f) .. " ran" } } do
			local args = { c[1], "--mode", "tc", "--host", addr, "--port", tostring(port), "--duration", "1",
				"--interval", "0.4" }
			local r = cli.run(args)
			assert.are.equal(0, r.code, r.err)
			local lines = cli.lines(r.err)
			assert.are.equal(2, #lines, r.err)
			assert.matches("^tcpinspect: " .. esc(c[1]) .. ": incoming TCP segments, tc mode %(.*%); Ctrl%-C to stop$",
				lines[1])
			local what = lines[2]:match(summary)
			assert(what, c[1] .. ": " .. lines[2])
			assert.matches("^" .. c[2] .. "$", what)
			if c[1] == "top" then assert.matches("tcpinspect top %(final%)  [%d:]+  incoming TCP, tc mode  ", r.out) end
		end
	end)

	it("--host NAME stands for every address of the name, v4 and v6", function()
		-- a private /etc/hosts, in a private mount namespace
		local hosts = net.tmpfile(".hosts")
		net.write_file(hosts, "127.0.0.1 localhost\n127.0.0.1 tihost.example\n::1 tihost.example\n")
		local cmd = ("unshare -m sh -c %s"):format(net.q(("mount --bind %s /etc/hosts && exec %s"):format(
			net.q(hosts), cli.cmdline { "-e", "io.write(json.encode(options.filter))", "--host", "tihost.example",
				"--saddr", "10.0.0.0/8,tihost.example" })))
		local out = net.must(cmd)
		local f = dkjson.decode(out)
		-- in getaddrinfo's order (RFC 6724 puts ::1 first): compare as sets
		table.sort(f.host)
		table.sort(f.saddr)
		assert.are.same({ "127.0.0.1", "::1" }, f.host)
		assert.are.same({ "10.0.0.0/8", "127.0.0.1", "::1" }, f.saddr)
	end)

	it("fallback_reason carries libbpf's message once", function()
		local s = net.open { filter = { host = net.addr4() } }
		assert.is_string(s.fallback_reason)
		assert.is_nil(s.fallback_reason:find("libbpf: libbpf:", 1, true), s.fallback_reason)
		s:close()
	end)
end)
