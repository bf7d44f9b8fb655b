-- SPDX-License-Identifier: GPL-2.0-only
-- Fuzz hygiene: libFuzzer's artefacts never sit in the tree; an input worth
-- keeping lives in spec/fuzz/regress/TARGET/, which `spec/fuzz/run fuzz`
-- replays through TARGET on every run, and every fuzzer run there sends its
-- artefacts under build/ (-artifact_prefix).
local net = require "support.net"
local function sh(cmd) return net.must(cmd) end
local function read(path) return assert(net.read_file(path), path) end

describe("fuzz hygiene", function()
	local run = read("spec/fuzz/run")

	it("no file named as a libFuzzer artefact is tracked (regression inputs are renamed TARGET-SHA1PREFIX)", function()
		local stray = {}
		for path in sh("git ls-files"):gmatch("[^\n]+") do
			local base = path:match("[^/]+$")
			if base:match("^crash%-") or base:match("^leak%-") or base:match("^timeout%-")
				or base:match("^oom%-") or base:match("^slow%-unit%-") then
				stray[#stray + 1] = path
			end
		end
		assert.are.same({}, stray)
	end)

	it("the regression inputs belong to a target that spec/fuzz/run fuzzes, and are replayed", function()
		local targets = run:match("for t in ([%w ]+); do")
		assert.is_truthy(targets, "spec/fuzz/run: no 'for t in ...' loop over its targets")
		local known = {}
		for t in targets:gmatch("%w+") do known[t] = true end
		local n = 0
		for path in sh("git ls-files spec/fuzz/regress"):gmatch("[^\n]+") do
			local t = path:match("^spec/fuzz/regress/([%w_]+)/")
			if t then
				assert.is_true(known[t] == true, path .. ": no fuzz target '" .. t .. "' in spec/fuzz/run")
				n = n + 1
			end
		end
		-- the two cbpf inputs once at the repository's root, and decode's two:
		-- a segment's record without a drop's fields (issue 21), and a packet
		-- time past what time_t holds (issue 23: the watch line's clock)
		assert.are.equal(4, n)
		assert.matches('spec/fuzz/regress/$t/*', run, 1, true)
	end)

	it("every fuzzer run in spec/fuzz/run sends its artefacts under build/", function()
		local runs = 0
		-- one line per command: continuation lines joined
		for line in run:gsub("\\\n", " "):gmatch("[^\n]+") do
			if line:match("^%s*[^#]*%$FUZZ/%$t ") or line:match("if %$FUZZ/%$t ") then
				runs = runs + 1
				assert.matches('-artifact_prefix="$art"', line, 1, true)
			end
		end
		assert.are.equal(2, runs) -- the regression inputs, then the fuzzing
		assert.matches("art=$FUZZ/artifacts/$t/", run, 1, true)
		assert.matches("^build/", (run:match("\nFUZZ=(%S+)")))
	end)
end)
