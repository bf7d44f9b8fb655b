-- SPDX-License-Identifier: GPL-2.0-only
-- The plain-C parsers and the facts stated once (issue 20).
--
-- 1. The fuzz targets link only what they test: spec/fuzz/run's
--    FUZZ_TARGETS gives each target's libraries and sources, and every
--    target but decode (a Lua state with tcpinspect.core) is built here from
--    that line with no Lua include path and no Lua library, then run on an
--    input: ports and cidr link luaext/parse.c alone, cbpf luaext/expr.c
--    and libpcap.
-- 2. The mode names and the TCP flag names are spelled as a list once in
--    C (TI_MODES in luaext/kernel.h, TI_TCP_FLAGS in bpf/tcpinspect.h);
--    every other C file and lua/ take them from there (ti_mode_names,
--    ti_flag_names; core.mode_names, core.flag_names).
-- 3. The verifier's stack-slot rule is explained once ("Stack slots" in
--    bpf/ti_rules.h) and the other comments point to it.
local net = require "support.net"

local function read(path) return assert(net.read_file(path), path) end

local function ls(glob)
	local t = {}
	for f in net.must("ls -1 " .. glob):gmatch("[^\n]+") do t[#t + 1] = f end
	return t
end

-- spec/fuzz/run's targets: { name = { libs = "...", srcs = { files } } }
local function fuzz_targets()
	local run = read("spec/fuzz/run")
	local libs = run:match('\nLIBS="([^"]*)"')
	local body = run:match("\nFUZZ_TARGETS=%((.-)\n%)")
	assert.is_truthy(body, "spec/fuzz/run: no FUZZ_TARGETS=( ... ) list")
	local t, order = {}, {}
	for line in body:gmatch('"([^"]+)"') do
		local name, l, srcs = line:match("^([%w_]+):([^:]*):(.+)$")
		assert.is_truthy(name, "spec/fuzz/run: FUZZ_TARGETS entry '" .. line .. "' is not TARGET:LIBS:SOURCES")
		l = l:gsub("%$LIBS", libs or "")
		local files = {}
		for g in srcs:gmatch("%S+") do
			for _, f in ipairs(ls(g)) do files[#files + 1] = f end
		end
		t[name] = { libs = l, srcs = files }
		order[#order + 1] = name
	end
	return t, order, run
end

-- Tokens of a C or Lua source: the contents of its string literals, in
-- order, comments and everything else dropped.
local function literals(src, lang)
	local out, i, n = {}, 1, #src
	while i <= n do
		local c = src:sub(i, i)
		local two = src:sub(i, i + 1)
		if lang == "c" and two == "/*" then
			i = (select(2, src:find("*/", i + 2, true)) or n) + 1
		elseif (lang == "c" and two == "//") or (lang == "lua" and two == "--" and not src:find("^%-%-%[=*%[", i)) then
			i = (src:find("\n", i, true) or n) + 1
		elseif lang == "lua" and (src:find("^%[=*%[", i) or src:find("^%-%-%[=*%[", i)) then
			local comment = two == "--"
			local open = src:match("^%-?%-?(%[=*%[)", i)
			local close = "]" .. open:sub(2, -2) .. "]"
			local from = i + (comment and 2 or 0) + #open
			local e = src:find(close, from, true) or n
			if not comment then out[#out + 1] = src:sub(from, e - 1) end
			i = e + #close
		elseif c == '"' or c == "'" then
			local j, buf = i + 1, {}
			while j <= n and src:sub(j, j) ~= c and src:sub(j, j) ~= "\n" do
				if src:sub(j, j) == "\\" then j = j + 1 end
				buf[#buf + 1] = src:sub(j, j)
				j = j + 1
			end
			-- C's character literals ('F') are not names
			if lang == "lua" or c == '"' then out[#out + 1] = table.concat(buf) end
			i = j + 1
		else
			i = i + 1
		end
	end
	return out
end

-- Does this list of literals spell names as a list?  Either one literal
-- holds `enough` distinct names in a row, as words apart only by
-- punctuation, "or" or "and" ("auto, fentry, kprobe, tc, cgroup"; not
-- advice like "tc: ... use mode='cgroup', 'fentry' or 'kprobe'"), or
-- `enough` distinct names are whole literals among 8 consecutive ones
-- ({ "fentry", "kprobe", "tc", "cgroup" }, X(FENTRY, "fentry") ...).
local function spells(lits, names, enough)
	local is = {}
	for _, v in ipairs(names) do is[v] = true end
	for k, s in ipairs(lits) do
		local run = {}
		local count = 0
		for w in s:gmatch("%w+") do
			if is[w] and not run[w] then
				run[w] = true
				count = count + 1
				if count >= enough then return true end
			elseif w ~= "or" and w ~= "and" then
				run, count = {}, 0
				if is[w] then run[w], count = true, 1 end
			end
		end
		local seen = {}
		count = 0
		for j = k, math.min(k + 7, #lits) do
			if is[lits[j]] and not seen[lits[j]] then
				seen[lits[j]] = true
				count = count + 1
			end
		end
		if count >= enough then return true end
	end
	return false
end

local MODES = { "fentry", "kprobe", "tc", "cgroup" }
local FLAGS = { "fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr" }

local function copies(files, lang, names, enough)
	local found = {}
	for _, f in ipairs(files) do
		if spells(literals(read(f), lang), names, enough) then found[#found + 1] = f end
	end
	table.sort(found)
	return found
end

local function c_files() return ls("luaext/*.c luaext/*.h bpf/*.c bpf/*.h") end

local function lua_files()
	local t = {}
	for f in net.must("find lua -name '*.lua' | sort"):gmatch("[^\n]+") do t[#t + 1] = f end
	return t
end


describe("plain-C parsers", function()
	it("the fuzz targets are FUZZ_TARGETS, all fuzzed, and only decode links Lua", function()
		local t, order, run = fuzz_targets()
		local loop = {}
		for w in assert(run:match("for t in ([%w ]+); do"), "spec/fuzz/run: no 'for t in' loop"):gmatch("%w+") do
			loop[#loop + 1] = w
		end
		assert.are.same(loop, order)
		local lua = {}
		for name, tg in pairs(t) do
			if tg.libs:find("%-llua") then lua[#lua + 1] = name end
		end
		assert.are.same({ "decode" }, lua)
		assert.are.same({ "spec/fuzz/fuzz_ports.c", "luaext/parse.c" }, t.ports.srcs)
		assert.are.same({ "spec/fuzz/fuzz_cidr.c", "luaext/parse.c" }, t.cidr.srcs)
		assert.are.same({ "spec/fuzz/fuzz_cbpf.c", "luaext/expr.c" }, t.cbpf.srcs)
	end)

	it("builds every Lua-free fuzz target from its FUZZ_TARGETS line with no Lua include path, and runs it", function()
		local t = fuzz_targets()
		local dir = net.must("mktemp -d"):match("%S+")
		finally(function() net.sh("rm -rf " .. net.q(dir)) end)
		local main = dir .. "/main.c"
		net.write_file(main, [[
#include <stdint.h>
#include <string.h>
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		LLVMFuzzerTestOneInput((const uint8_t *)argv[i], strlen(argv[i]));
	return 0;
}
]])
		local inputs = {
			ports = { "80", "8000-8100, 22", "65536", "9-1", "" },
			cidr = { "10.0.0.0/8", "2001:db8::/32", "::1", "192.0.2.1/33", "x" },
			-- 'A' % 32 + 1 = 2 instructions of 8 bytes, then a packet: any
			-- program must be refused or run inside the packet
			cbpf = { ("A"):rep(40) },
		}
		local built = 0
		for name, tg in pairs(t) do
			if not tg.libs:find("%-llua") then
				local exe = dir .. "/" .. name
				-- cc's default include path has no lua.h (Debian: /usr/include/lua5.4)
				local ok, out = net.sh(("cc -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Werror -Ibpf -Iluaext -o %s %s %s %s 2>&1")
					:format(net.q(exe), main, table.concat(tg.srcs, " "), tg.libs))
				assert.is_true(ok, name .. ": does not build without Lua:\n" .. out)
				local args = {}
				for _, a in ipairs(inputs[name] or { "" }) do args[#args + 1] = net.q(a) end
				ok, out = net.sh(net.q(exe) .. " " .. table.concat(args, " ") .. " 2>&1")
				assert.is_true(ok, name .. ": " .. out)
				assert.is_nil(net.must("ldd " .. net.q(exe)):find("liblua"), name .. " links liblua")
				built = built + 1
			end
		end
		assert.are.equal(3, built)
	end)
end)

describe("one definition of the mode and flag names", function()
	it("the scanner finds a list in each of its forms", function()
		local function modes(src, lang) return spells(literals(src, lang), MODES, 4) end
		assert.is_true(modes('x = "auto, fentry, kprobe, tc, cgroup"; /* "fin" */', "c"))
		assert.is_true(modes('{ M_F, "fentry" }, { M_K, "kprobe" },\n { M_T, "tc" }, { M_C, "cgroup" }', "c"))
		assert.is_true(spells(literals('X(FIN, 1, "fin", \'F\') X(SYN, 2, "syn", \'S\') X(RST, 4, "rst", \'R\') X(PSH, 8, "psh", \'P\')', "c"), FLAGS, 4))
		assert.is_true(spells(literals('"unknown TCP flag \'%s\' (fin syn rst psh ack urg ece cwr)"', "c"), FLAGS, 4))
		assert.is_true(modes('local m = { "fentry", "kprobe", [[tc]], \'cgroup\' }', "lua"))
		assert.is_true(modes('opt("--mode", "Hook: auto (default: fentry, kprobe, tc, cgroup in turn).")', "lua"))
		-- comments, and advice that names modes without listing them
		assert.is_false(modes('-- fentry, kprobe, tc, cgroup\nlocal s = "--mode tc" --[[ "fentry" "kprobe" "cgroup" ]]', "lua"))
		assert.is_false(modes('/* "fentry", "kprobe", "tc", "cgroup" */ // "fentry" "kprobe" "tc" "cgroup"', "c"))
		assert.is_false(modes('"tc: tc runs first; use mode=\'cgroup\', \'fentry\' or \'kprobe\'"', "c"))
		assert.is_false(modes('"fentry is refused; try mode=\'kprobe\', \'tc\' or \'cgroup\'"', "c"))
	end)

	it("C: the modes are listed only in TI_MODES (luaext/kernel.h)", function()
		assert.are.same({ "luaext/kernel.h" }, copies(c_files(), "c", MODES, 4))
	end)

	it("C: the TCP flags are listed only in TI_TCP_FLAGS (bpf/tcpinspect.h)", function()
		assert.are.same({ "bpf/tcpinspect.h" }, copies(c_files(), "c", FLAGS, 4))
	end)

	it("lua/ takes them from core.mode_names and core.flag_names", function()
		assert.are.same({}, copies(lua_files(), "lua", MODES, 4))
		assert.are.same({}, copies(lua_files(), "lua", FLAGS, 4))
	end)
end)

describe("one explanation of the verifier's stack-slot rule", function()
	it("only bpf/ti_rules.h quotes \"spilled pointer\"; the others name its \"Stack slots\"", function()
		local quoting, pointing = {}, 0
		for _, f in ipairs(c_files()) do
			local src = read(f)
			if src:find("spilled pointer", 1, true) then quoting[#quoting + 1] = f end
			if f ~= "bpf/ti_rules.h" then
				for _ in src:gmatch('bpf/ti_rules%.h,%s+%*?%s*"Stack%s+%*?%s*slots"') do pointing = pointing + 1 end
			end
		end
		assert.are.same({ "bpf/ti_rules.h" }, quoting)
		assert.matches('/%* Stack slots: the one explanation', read("bpf/ti_rules.h"))
		-- ti_parse.h (3), ti_cbpf.h, tcpinspect.bpf.c's ti_count, ti_conn.h's ti_conn_mark
		assert.are.equal(6, pointing)
	end)
end)
