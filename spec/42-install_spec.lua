-- SPDX-License-Identifier: GPL-2.0-only
-- Unit specs: installing (issue 25).  `make install` and `make uninstall`
-- with DESTDIR, with PREFIX, and with the default PREFIX as the README's
-- first command runs it (in a private mount namespace over an empty
-- /usr/local, so the machine's own is untouched); LuaRocks offline with
-- Debian's modules (`make deps` lists them as rocks_provided: here in a
-- copy of LuaRocks' system config, LUAROCKS_SYSCONFDIR), its tree's
-- command with no environment, and a binary rock (`luarocks pack`)
-- installed with no compiler on PATH.  No root needed (unshare -rm).

local ROOT = (function()
	local p = assert(io.popen("pwd -P"))
	local d = p:read("l")
	p:close()
	return d
end)()

local net = require "support.net"
local q, must = net.q, net.must
local function sh(cmd) -- exit code, output (stdout and stderr)
	local _, out, code = net.sh(cmd)
	return code, out
end
local function read(path) return assert(net.read_file(path), path) end

-- the files under a directory, relative, sorted (kind "f" or "d")
local function listing(dir, kind)
	local out = must("cd " .. q(dir) .. " && find . -mindepth 1 -type " .. kind .. " | sed 's|^\\./||' | LC_ALL=C sort")
	local t = {}
	for l in out:gmatch("[^\n]+") do t[#t + 1] = l end
	return t
end

-- what make install must put under a prefix
local function expected_files(prefix)
	local t = { prefix .. "/bin/tcpinspect", prefix .. "/lib/lua/5.4/tcpinspect/core.so",
		prefix .. "/share/lua/5.4/tcpinspect.lua" }
	for l in must("cd lua/tcpinspect && ls *.lua"):gmatch("[^\n]+") do
		t[#t + 1] = prefix .. "/share/lua/5.4/tcpinspect/" .. l
	end
	table.sort(t)
	return t
end
-- the shared directories uninstall leaves (empty)
local function shared_dirs(prefix)
	local t, p = {}, ""
	for part in prefix:gmatch("[^/]+") do
		p = p == "" and part or p .. "/" .. part
		t[#t + 1] = p
	end
	for _, d in ipairs { "/bin", "/lib", "/lib/lua", "/lib/lua/5.4", "/share", "/share/lua", "/share/lua/5.4" } do
		t[#t + 1] = prefix .. d
	end
	table.sort(t)
	return t
end

local FIX = ROOT .. "/spec/fixtures/port_scan.pcap"
local EXAMPLE = ROOT .. "/examples/port_scan.lua"
local ALERT = "ALERT port-scan src=127.0.0.1 ports=40 window=2s\nSUMMARY port-scan alerts=1\n"
local NOENV = "env -i PATH=/usr/bin:/bin "

describe("install", function()
	local tmp
	before_each(function()
		tmp = must("mktemp -d /tmp/tcpinspect-install-XXXXXXXX"):match("^(%S+)")
	end)
	after_each(function()
		if tmp then sh("rm -rf " .. q(tmp)) end
	end)

	it("the README's first command installs (make deps install run), before any example types tcpinspect", function()
		local readme = read("README.md")
		local first = readme:match("```sh\n([^\n]*)")
		assert.matches("make deps install run", first, 1, true)
		assert(readme:find("```sh\n", 1, true) < readme:find("\ntcpinspect ", 1, true))
	end)

	it("make install DESTDIR: exactly its files, the command naming the final paths; make uninstall leaves only the shared directories", function()
		must("make -s install DESTDIR=" .. q(tmp))
		assert.are.same(expected_files("usr/local"), listing(tmp, "f"))
		local bin = read(tmp .. "/usr/local/bin/tcpinspect")
		assert.matches('package.path = "/usr/local/share/lua/5.4/?.lua;', bin, 1, true)
		assert.matches('package.cpath = "/usr/local/lib/lua/5.4/?.so;', bin, 1, true)
		assert.is_nil(bin:find(tmp, 1, true))
		-- a file of someone else's in a shared directory stays
		must("touch " .. q(tmp .. "/usr/local/bin/other"))
		must("make -s uninstall DESTDIR=" .. q(tmp))
		assert.are.same({ "usr/local/bin/other" }, listing(tmp, "f"))
		assert.are.same(shared_dirs("usr/local"), listing(tmp, "d"))
	end)

	it("make install PREFIX: the command runs with no environment from anywhere; make uninstall removes it", function()
		local prefix = tmp .. "/p"
		must("make -s install PREFIX=" .. q(prefix))
		assert.are.same(expected_files("p"), listing(tmp, "f"))
		local rc, out = sh("cd / && " .. NOENV .. q(prefix .. "/bin/tcpinspect") .. " -q -r " .. q(FIX) .. " " ..
			q(EXAMPLE) .. " 2>/dev/null")
		assert.are.equal(0, rc)
		assert.are.equal(ALERT, out)
		must("make -s uninstall PREFIX=" .. q(prefix))
		assert.are.same({}, listing(tmp, "f"))
		assert.are.same(shared_dirs("p"), listing(tmp, "d"))
	end)

	it("the default PREFIX: tcpinspect on PATH and require from /tmp with no environment; uninstall leaves no file", function()
		-- a private mount namespace with an empty /usr/local (unshare -r: no root needed)
		local script = table.concat({
			"mount -t tmpfs tmpfs /usr/local",
			"make -s install >/dev/null",
			"cd /tmp",
			"env -i PATH=/usr/local/bin:/usr/bin:/bin tcpinspect --version | head -1",
			"env -i PATH=/usr/bin:/bin lua5.4 -e 'print(require(\"tcpinspect\")._VERSION)'",
			"env -i PATH=/usr/bin:/bin lua5.4 -e 'print(require(\"tcpinspect.testing\").run ~= nil)'",
			"command -v tcpinspect",
			"cd " .. q(ROOT),
			"make -s uninstall",
			"echo files: $(find /usr/local -type f | wc -l)",
		}, " && ")
		local rc, out = sh("unshare -rm sh -c " .. q(script))
		assert.are.equal(0, rc, out)
		local ti = require "tcpinspect"
		assert.are.equal(("tcpinspect %s\n%s\ntrue\n/usr/local/bin/tcpinspect\nfiles: 0\n"):format(
			ti.versions().tcpinspect, ti._VERSION), out)
	end)
end)

describe("LuaRocks, offline, with Debian's modules", function()
	local tmp, sysconf
	lazy_setup(function()
		tmp = must("mktemp -d /tmp/tcpinspect-rocks-XXXXXXXX"):match("^(%S+)")
		-- LuaRocks' system config as Debian ships it (without make deps' block)
		sysconf = tmp .. "/etc"
		must("mkdir " .. q(sysconf) .. " && sed '/^-- BEGIN make deps (tcpinspect)/,/^-- END make deps (tcpinspect)/d' " ..
			"/etc/luarocks/config-5.4.lua > " .. q(sysconf .. "/config-5.4.lua"))
		-- the checkout, with its build (times kept: nothing to rebuild)
		must("mkdir " .. q(tmp .. "/src") .. " && cp -a Makefile bpf luaext lua doc build tcpinspect-0.2.0-1.rockspec " ..
			q(tmp .. "/src/"))
	end)
	lazy_teardown(function()
		if tmp then sh("rm -rf " .. q(tmp)) end
	end)
	local LR = function() return "LUAROCKS_SYSCONFDIR=" .. q(sysconf) .. " luarocks --lua-version=5.4 " end

	it("without make deps' config, luarocks make cannot satisfy argparse (no server)", function()
		local rc, out = sh("cd " .. q(tmp .. "/src") .. " && " .. LR() .. "make --tree " .. q(tmp .. "/t0"))
		assert.are_not.equal(0, rc)
		assert.matches("Could not satisfy dependency argparse", out, 1, true)
	end)

	it("make deps (luarocks-provided) lists the Debian packages' versions as rocks_provided, keeping the rest", function()
		local before = read(sysconf .. "/config-5.4.lua")
		local out = must("make -s luarocks-provided LUAROCKS_SYSCONFDIR=" .. q(sysconf))
		local want = {}
		for rock, deb in ("argparse:lua-argparse dkjson:lua-dkjson luasocket:lua-socket"):gmatch("(%w+):([%w-]+)") do
			local v = must("dpkg-query -W -f='${Version}' " .. deb)
			local up = v:gsub("^%d+:", ""):gsub("%-[^-]*$", ""):gsub("[~+].*$", "")
			want[#want + 1] = ('rocks_provided["%s"] = "%s-1" -- Debian %s %s'):format(rock, up, deb, v)
		end
		local ma = must("gcc -print-multiarch"):match("%S+")
		local dirs = ('{ lib = { "lib", "lib/%s", "lib64" } }'):format(ma)
		local conf = read(sysconf .. "/config-5.4.lua")
		assert.are.equal(before .. "-- BEGIN make deps (tcpinspect): rocks provided by Debian packages\n" ..
			"rocks_provided = rocks_provided or {}\n" .. table.concat(want, "\n") .. "\n" ..
			"-- the multiarch library directory, where LuaRocks looks only when gcc is there to name it\n" ..
			"external_deps_subdirs = " .. dirs .. "\nruntime_external_deps_subdirs = " .. dirs .. "\n" ..
			"-- END make deps (tcpinspect)\n", conf)
		assert.matches("rocks_provided argparse ", out, 1, true)
		-- again: nothing to do, the file unchanged
		out = must("make -s luarocks-provided LUAROCKS_SYSCONFDIR=" .. q(sysconf))
		assert.matches("is up to date", out, 1, true)
		assert.are.equal(conf, read(sysconf .. "/config-5.4.lua"))
	end)

	it("luarocks make --tree (no --deps-mode) succeeds; the tree's command runs with no environment", function()
		local out = must("cd " .. q(tmp .. "/src") .. " && " .. LR() .. "make --tree " .. q(tmp .. "/t"))
		for _, rock in ipairs { "argparse", "dkjson", "luasocket" } do
			assert.matches("depends on " .. rock .. " %(%S+ provided by VM%)", out)
		end
		local rc
		rc, out = sh("cd " .. q(ROOT) .. " && " .. NOENV .. q(tmp .. "/t/bin/tcpinspect") ..
			" -q -r spec/fixtures/port_scan.pcap examples/port_scan.lua")
		assert.are.equal(0, rc, out)
		assert.are.equal(ALERT, out)
	end)

	it("luarocks pack makes a binary rock that installs with no compiler on PATH, and runs", function()
		local packdir = tmp .. "/pack"
		must("mkdir " .. q(packdir))
		local out = must("cd " .. q(packdir) .. " && " .. LR() .. "--tree " .. q(tmp .. "/t") .. " pack tcpinspect")
		local rock = assert(out:match("Packed: (%S+%.rock)"), out)
		assert.matches("%.linux%-x86_64%.rock$", rock)
		-- PATH: /usr/bin and /bin without compilers, linkers or make
		local bin = tmp .. "/nocc"
		must("mkdir " .. q(bin) .. " && for f in /usr/bin/* /bin/*; do n=${f##*/}; case $n in " ..
			"*clang*|*gcc*|cc|c++|*g++*|cpp*|make|*-ld|ld|ld.*|llc*|bpftool) continue;; esac; " ..
			"[ -e " .. q(bin) .. "/$n ] || ln -s $f " .. q(bin) .. "/$n; done")
		local path = "PATH=" .. q(bin)
		assert.are_not.equal(0, (sh("env " .. path .. " sh -c 'command -v clang || command -v cc || command -v make'")))
		out = must("cd " .. q(packdir) .. " && env " .. path .. " " .. LR() .. "install --tree " ..
			q(tmp .. "/t2") .. " " .. q(rock))
		assert.matches("tcpinspect 0.2.0-1 is now installed", out, 1, true)
		local rc
		rc, out = sh("cd / && env -i " .. path .. " " .. q(tmp .. "/t2/bin/tcpinspect") .. " -q -r " .. q(FIX) ..
			" " .. q(EXAMPLE))
		assert.are.equal(0, rc, out)
		assert.are.equal(ALERT, out)
	end)
end)
