-- SPDX-License-Identifier: GPL-2.0-only
rockspec_format = "3.0"
package = "tcpinspect"
version = "0.2.0-1"
source = {
	url = "git+file:///dev/null", -- built from the checkout: luarocks make
}
description = {
	summary = "Every incoming TCP segment, seen from the kernel (eBPF), in Lua",
	detailed = [[
tcpinspect puts eBPF probes on tcp_v4_rcv/tcp_v6_rcv (fentry or kprobe), or
on cgroup_skb/tc ingress where function probes are missing, and hands the
segments to Lua: filters, sampling and aggregates run in the kernel.
]],
	license = "GPL-2.0-only",
}
-- What lua/ requires (spec/04-packaging_spec.lua checks it). Debian's
-- packages provide the same modules: lua-argparse, lua-dkjson, lua-socket.
-- make deps installs them and lists them as `rocks_provided` in LuaRocks'
-- system config (/etc/luarocks/config-5.4.lua), so `luarocks make` finds
-- them satisfied, with no server.
dependencies = {
	"lua >= 5.4",
	"argparse",
	"dkjson",
	"luasocket", -- tcpinspect export and --listen (Debian: lua-socket)
}
external_dependencies = {
	LIBBPF = { header = "bpf/libbpf.h", library = "bpf" },
}
build = {
	type = "make",
	build_variables = {
		CFLAGS = "$(CFLAGS)",
		LIBFLAG = "$(LIBFLAG)",
		LUA = "$(LUA)",
		LUA_INCDIR = "$(LUA_INCDIR)",
		LIBBPF_INCDIR = "$(LIBBPF_INCDIR)",
		LIBBPF_LIBDIR = "$(LIBBPF_LIBDIR)",
	},
	install_variables = {
		LUA = "$(LUA)",
		BIN_PATHS = "no", -- LuaRocks wraps bin/tcpinspect with the tree's paths
		INST_LIBDIR = "$(LIBDIR)",
		INST_LUADIR = "$(LUADIR)",
		INST_BINDIR = "$(BINDIR)",
	},
}
test = {
	-- luarocks test would fetch busted from the network: use make test.
	type = "command",
	command = "make test",
}
