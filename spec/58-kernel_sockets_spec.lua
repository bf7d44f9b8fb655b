-- SPDX-License-Identifier: GPL-2.0-only
-- The receiving socket (issue 21, item 2): with sockets = true every record
-- names the socket that took the segment -- p.sk_state, p.uid, p.pid,
-- p.comm, p.sk_cookie -- and the filter keys uid and sk_state are
-- evaluated in the kernel.
--
-- Three listeners, owned by three users (root, nobody, daemon) and three
-- processes (each with its own comm), the third in another network
-- namespace; two conversations with each.  Each server prints what
-- `ss -tlnpe` shows for its listener and what `ss -tnpe` shows for each
-- connection it accepted (spec/support/listeners.py), and for every
-- segment of those conversations the record must agree:
--   a SYN: LISTEN, the listener's uid, pid, comm and cookie (ss's sk:,
--     where ss reads sock_diag; else one cookie per socket);
--   the handshake's last ACK: tc looks up the request socket (SYN_RECV,
--     the listener's owner); cgroup, and fentry/kprobe's socket-side hook
--     (sk_filter_trim_cap, where cgroup_skb runs), see the listener (LISTEN);
--   then ESTABLISHED, the accepted socket's uid, pid, comm, cookie;
--   the last ACK, after the server closed: LAST_ACK, its uid, and no
--     process (an orphan: ss shows ino:0 and no users) or, where the ACK
--     came back while close() still held the socket, its last holder.
-- Then the in-kernel filters, counted exactly: sessions with filter.uid =
-- 65534 and filter.sk_state = {"LISTEN", "SYN_RECV"} match exactly the
-- records of the first session with that uid / those states.
-- Drops: K bare ACKs to a listener (no connection) are K drops; where the
-- kernel's skb:kfree_skb names the receiving socket (rx_sk, 6.11+:
-- features().sockets_drops) each names the listener as ss does, else none.
local net = require "support.net"
local tcpinspect = require "tcpinspect"

local N = 2
local PY = "/usr/bin/python3 " .. net.ROOT .. "/spec/support/listeners.py"

-- "LISTEN ... users:(("name",pid=P,fd=F)) uid:U ino:I sk:HEX ..." -> fields
local function parse_ss(line)
	local comm, pid = line:match('users:%(%("([^"]+)",pid=(%d+)')
	-- (ss leaves uid:0 out)
	-- sk: is the socket cookie where ss asked the kernel through sock_diag
	-- (its lines then carry cgroup:); without tcp_diag (the guests'
	-- initramfs has no such module) ss reads /proc/net/tcp, whose sk is the
	-- socket's hashed address: no cookie to compare
	local diag = line:find(" cgroup:") ~= nil
	return { comm = comm, pid = tonumber(pid), uid = tonumber(line:match(" uid:(%d+)")) or 0,
		cookie = diag and tonumber(line:match(" sk:(%x+)"), 16) or nil, diag = diag, line = line }
end

local function read_server(path)
	local r = { estab = {} }
	for line in (net.read_file(path) or ""):gmatch("[^\n]+") do
		local what, rest = line:match("^(%u+) (.*)$")
		if what == "LISTEN" then r.listen = parse_ss(rest)
		elseif what == "ESTAB" then
			local cport, ssline = rest:match("^(%d+) (.*)$")
			r.estab[tonumber(cport)] = parse_ss(ssline)
		end
	end
	return r
end

describe("#kernel receiving socket", function()
	it("features() says sockets work here, and what each mode names", function()
		local f = tcpinspect.features()
		assert.is_true(f.sockets, f.reasons.sockets)
		assert.truthy(f.reasons.sockets:find("tc:", 1, true))
		assert.is_false(f.replay_sockets)
		assert.is_string(f.reasons.replay_sockets)
	end)

	it("filter.uid and filter.sk_state without sockets = true raise an error naming the option", function()
		for _, filt in ipairs{ { uid = 0 }, { sk_state = "LISTEN" } } do
			local ok, err = pcall(tcpinspect.open, { mode = net.modes()[1], filter = filt })
			assert.is_false(ok)
			assert.truthy(tostring(err):find("sockets", 1, true), tostring(err))
		end
		local ok, err = pcall(tcpinspect.open, { mode = net.modes()[1], sockets = true,
			filter = { sk_state = "NO_SUCH_STATE" } })
		assert.is_false(ok)
		assert.truthy(tostring(err):find("ESTABLISHED", 1, true), tostring(err))
	end)

	for _, mode in ipairs(net.modes()) do
		-- each child is `timeout` itself (exec; ip netns exec and setpriv
		-- exec too): TERM reaches the process under it, and waiting for
		-- timeout waits for it
		it(("[%s] drops name the receiving socket where the tracepoint has rx_sk #anymode"):format(mode), function()
			local defer = net.cleanups(finally)
			local K = 5
			local addr, port = net.addr4(), net.port()
			local out = net.tmpfile(".out")
			local pid = net.spawn(("exec timeout %d setpriv --reuid 65534 --regid 65534 --clear-groups %s serve %s %d 0 ti-srv-d")
				:format(net.scale(60), PY, addr, port), out)
			defer(function() net.kill(pid, "TERM"); net.wait_exit(pid, 5) end)
			assert(net.wait_until(function() return read_server(out).listen end, 10), "not listening")
			local l = read_server(out).listen
			local s <close> = net.open{ mode = mode, sockets = true, drops = true, filter = { dport = port } }
			local rx = tcpinspect.features().sockets_drops
			local got = {}
			s:on_drop(function(p)
				-- the sender's raw socket holds copies of its segments: purged at its close
				if p.daddr == addr and p.location ~= "inet_sock_destruct" then
					got[#got + 1] = { p.reason, p.sk_state, p.uid, p.pid, p.comm }
				end
			end)
			local ok, o = net.sh(("%s acks %s %d %d"):format(PY, addr, port, K))
			assert(ok, o)
			net.drain(s)
			net.say("%s: %d drops, rx_sk %s: %s", mode, #got, tostring(rx), net.serialize(got[1]))
			assert.are.equal(K, #got)
			for _, g in ipairs(got) do
				if rx then
					assert.are.same({ "LISTEN", 65534, l.pid, "ti-srv-d" }, { g[2], g[3], g[4], g[5] })
				else
					assert.are.same({}, { g[2], g[3], g[4], g[5] })
				end
			end
		end)

		it(("[%s] a connection not yet accepted: its listener's owner"):format(mode), function()
			local defer = net.cleanups(finally)
			local K = 2
			local addr, port = net.addr4(), net.port()
			local out = net.tmpfile(".out")
			local pid = net.spawn(("exec timeout %d setpriv --reuid 65534 --regid 65534 --clear-groups %s hold %s %d 0 ti-srv-e")
				:format(net.scale(60), PY, addr, port), out)
			defer(function() net.kill(pid, "TERM"); net.wait_exit(pid, 5) end)
			assert(net.wait_until(function() return read_server(out).listen end, 10), "not listening")
			local l = read_server(out).listen
			local s <close> = net.open{ mode = mode, sockets = true, filter = { dport = port } }
			local waiting, other = 0, 0
			s:on_packet(function(p)
				if p.daddr ~= addr then return end
				-- read now, as a live script does
				local got = { p.sk_state, p.uid, p.pid, p.comm }
				if p.sk_state == "ESTABLISHED" or p.sk_state == "CLOSE_WAIT" then
					waiting = waiting + 1
					assert.are.same({ p.sk_state, 65534, l.pid, "ti-srv-e" }, got)
				else
					other = other + 1
				end
			end)
			local cout = net.tmpfile(".out")
			local cpid = net.spawn(("exec timeout %d %s send %s %d %d"):format(net.scale(30), PY, addr, port, K), cout)
			defer(function() net.kill(cpid, "TERM"); net.wait_exit(cpid, 5) end)
			local deadline = tcpinspect.monotonic() + net.scale(20)
			while tcpinspect.monotonic() < deadline and not (net.read_file(cout) or ""):find("done") do s:poll(20) end
			net.drain(s)
			net.say("%s: %d segments to connections waiting in the accept queue, %d others", mode, waiting, other)
			-- each: "hello" and the FIN, at least
			assert.is_true(waiting >= 2 * K, waiting .. " segments to waiting connections")
		end)

		it(("[%s] three listeners, three users, one in another netns: every segment's socket is ss's"):format(mode),
			function()
			local defer = net.cleanups(finally)
			local ns = net.netns("sk")
			defer(function() ns:destroy() end)
			local port = net.port(3)
			local L = {
				{ name = "ti-srv-a", uid = 0, addr = net.addr4(), port = port },
				{ name = "ti-srv-b", uid = 65534, addr = net.addr4(), port = port + 1 },
				{ name = "ti-srv-c", uid = 1, addr = "127.0.0.1", port = port + 2, ns = ns.name },
			}
			local ports = { port, port + 1, port + 2 }
			local s <close> = net.open{ mode = mode, sockets = true, filter = { dport = ports } }
			local su <close> = net.open{ mode = mode, sockets = true, events = false,
				filter = { dport = ports, uid = 65534 } }
			local sst <close> = net.open{ mode = mode, sockets = true, events = false,
				filter = { dport = ports, sk_state = { "LISTEN", "SYN_RECV" } } }
			local recs = {}
			s:on_packet(function(p)
				recs[#recs + 1] = { daddr = p.daddr, sport = p.sport, dport = p.dport, flagstr = p.flagstr,
					len = p.len, sk_state = p.sk_state, uid = p.uid, pid = p.pid, comm = p.comm,
					sk_cookie = p.sk_cookie }
			end)
			for _, l in ipairs(L) do
				l.out = net.tmpfile(".out")
				local cmd = ("timeout %d setpriv --reuid %d --regid %d --clear-groups %s serve %s %d %d %s"):format(
					net.scale(60), l.uid, l.uid, PY, l.addr, l.port, N, l.name)
				if l.ns then cmd = "ip netns exec " .. l.ns .. " " .. cmd end
				l.pid = net.spawn("exec " .. cmd, l.out)
				defer(function() net.kill(l.pid, "TERM"); net.wait_exit(l.pid, 5) end)
			end
			for _, l in ipairs(L) do
				assert(net.wait_until(function() return read_server(l.out).listen end, 10), l.name .. " not listening")
			end
			-- the clients run while this process reads the records, as a
			-- live session does: pid and comm are found while the sockets
			-- are held (kernel_sockets.c)
			for _, l in ipairs(L) do
				local cmd = ("timeout %d %s client %s %d %d"):format(net.scale(30), PY, l.addr, l.port, N)
				l.cout = net.tmpfile(".out")
				l.cpid = net.spawn("exec " .. (l.ns and ("ip netns exec " .. l.ns .. " " .. cmd) or cmd), l.cout)
				defer(function() net.kill(l.cpid, "TERM"); net.wait_exit(l.cpid, 5) end)
			end
			local deadline = tcpinspect.monotonic() + net.scale(30)
			while tcpinspect.monotonic() < deadline do
				s:poll(20)
				local all = true
				for _, l in ipairs(L) do
					if not (net.read_file(l.cout) or ""):find("done") then all = false end
				end
				if all then break end
			end
			for _, l in ipairs(L) do
				assert.truthy((net.read_file(l.cout) or ""):find("done"), l.name .. " client: " .. tostring(net.read_file(l.cout)))
			end
			for _, l in ipairs(L) do
				assert(net.wait_until(function()
					local n = 0
					for _ in pairs(read_server(l.out).estab) do n = n + 1 end
					return n == N
				end, 10), l.name .. ": not " .. N .. " connections")
				l.ss = read_server(l.out)
				assert.are.equal(l.uid, l.ss.listen.uid, l.ss.listen.line)
				assert.are.equal(l.name, l.ss.listen.comm, l.ss.listen.line)
			end
			net.sleep(0.3) -- the last ACKs
			net.drain(s)
			local byport, checked, syns = {}, 0, {}
			for _, l in ipairs(L) do byport[l.port] = l end
			local seen_first, cookies = {}, {}
			for _, r in ipairs(recs) do
				local l = byport[r.dport]
				if l and r.daddr == l.addr and l.ss.estab[r.sport] then
					local key = l.port .. ":" .. r.sport
					local e = l.ss.estab[r.sport]
					local what = ("%s %s %d->%d %s: %s uid %s pid %s comm %s cookie %s"):format(mode, l.name, r.sport,
						r.dport, r.flagstr, tostring(r.sk_state), tostring(r.uid), tostring(r.pid), tostring(r.comm),
						tostring(r.sk_cookie))
					-- the cookie: as ss's where ss had it, else the same in
					-- every record of a socket (and never nil in cgroup mode,
					-- whose helper makes one)
					local function cookie(sock, want)
						if want.diag then return r.sk_cookie end
						if mode == "cgroup" then assert.is_not_nil(r.sk_cookie, what) end
						if r.sk_cookie ~= nil then
							cookies[sock] = cookies[sock] or r.sk_cookie
							assert.are.equal(cookies[sock], r.sk_cookie, what)
						end
						return nil
					end
					if r.flagstr == "S" then
						syns[l.name] = (syns[l.name] or 0) + 1
						assert.are.same({ "LISTEN", l.ss.listen.uid, l.ss.listen.pid, l.ss.listen.comm, l.ss.listen.cookie },
							{ r.sk_state, r.uid, r.pid, r.comm, cookie(l.name, l.ss.listen) }, what)
					elseif not seen_first[key] then
						-- the handshake's last ACK
						seen_first[key] = true
						assert.are.equal(".", r.flagstr, what)
						assert.are.equal(mode == "tc" and "SYN_RECV" or "LISTEN", r.sk_state, what)
						assert.are.same({ l.ss.listen.uid, l.ss.listen.pid, l.ss.listen.comm },
							{ r.uid, r.pid, r.comm }, what)
					elseif r.sk_state == "ESTABLISHED" then
						assert.are.same({ e.uid, e.pid, e.comm, e.cookie }, { r.uid, r.pid, r.comm, cookie(key, e) }, what)
					else
						-- the server has closed: an orphan has no process (ss: no
						-- users, ino:0); on lo the ACK can come back while close()
						-- still holds the socket, whose last holder is then named
						assert.are.equal("LAST_ACK", r.sk_state, what)
						assert.are.same({ e.uid }, { r.uid }, what)
						if r.pid ~= nil then
							assert.are.same({ e.pid, e.comm }, { r.pid, r.comm }, what)
						else
							assert.is_nil(r.comm, what)
						end
					end
					checked = checked + 1
				end
			end
			for _, l in ipairs(L) do assert.are.equal(N, syns[l.name], l.name .. " SYNs") end
			-- each conversation: SYN, last ACK, the ACK of "!", "hello",
			-- its echo's ACK, FIN, the last ACK: at least 6 records
			assert.is_true(checked >= 3 * N * 6, "only " .. checked .. " records checked")
			local st = net.stats(s)
			assert.are.equal(0, st.dropped)
			assert.are.equal(#recs, st.delivered)
			-- the in-kernel filters, exactly
			local want_uid, want_state = 0, 0
			for _, r in ipairs(recs) do
				if r.uid == 65534 then want_uid = want_uid + 1 end
				if r.sk_state == "LISTEN" or r.sk_state == "SYN_RECV" then want_state = want_state + 1 end
			end
			net.say("%s: %d records checked against ss; uid 65534: %d, LISTEN/SYN_RECV: %d", mode, checked,
				want_uid, want_state)
			assert.is_true(want_uid >= N * 6)
			assert.are.equal(want_uid, net.stats(su).matched)
			assert.are.equal(want_state, net.stats(sst).matched)
		end)
	end
end)

describe("receiving socket options", function()
	it("check_options: filter.uid / filter.sk_state need sockets = true, and sk_state takes this kernel's names", function()
		for _, filt in ipairs{ { uid = 1000 }, { sk_state = "LISTEN" }, { sk_state = { "LISTEN", "TIME_WAIT" } } } do
			local ok, err = pcall(tcpinspect.check_options, { filter = filt })
			assert.is_false(ok)
			assert.truthy(tostring(err):find("sockets = true", 1, true), tostring(err))
			assert.is_true(tcpinspect.check_options{ sockets = true, filter = filt })
		end
		for _, bad in ipairs{ { uid = -1 }, { uid = "root" }, { sk_state = "LISTENING" }, { sk_state = {} },
			{ sk_state = 10 } } do
			local ok, err = pcall(tcpinspect.check_options, { sockets = true, filter = bad })
			assert.is_false(ok, net.serialize(bad))
			assert.truthy(tostring(err):find("filter.", 1, true), tostring(err))
		end
		local ok, err = pcall(tcpinspect.check_options, { sockets = "yes" })
		assert.is_false(ok)
		assert.truthy(tostring(err):find("sockets", 1, true), tostring(err))
	end)
end)

describe("receiving socket in a replay", function()
	it("accepts sockets = true, and its socket fields are nil: a capture holds no sockets", function()
		local s = assert(tcpinspect.replay{ file = net.ROOT .. "/spec/fixtures/connections.pcap", sockets = true })
		local n, named = 0, 0
		s:on_packet(function(p)
			n = n + 1
			if p.sk_state or p.sk_cookie or p.uid or p.pid or p.comm then named = named + 1 end
		end)
		s:run{}
		assert.is_true(n > 0)
		assert.are.equal(0, named)
		-- the socket filter keys are allowed there, and match nothing
		local f = assert(tcpinspect.replay{ file = net.ROOT .. "/spec/fixtures/connections.pcap", sockets = true,
			filter = { sk_state = "ESTABLISHED" } })
		f:run{}
		local st = f:stats()
		assert.is_true(st.seen > 0)
		assert.are.equal(0, st.matched)
		s:close()
		f:close()
	end)
end)
