# SPDX-License-Identifier: GPL-2.0-only
# tcpinspect: build, test, install.
#
# Honours the LuaRocks variable contract (see the rockspec): CFLAGS, LIBFLAG,
# LUA_INCDIR, LIBBPF_INCDIR, LIBBPF_LIBDIR, INST_LIBDIR, INST_LUADIR.
# BPF compile flags (BPF_CFLAGS) never mix with the user-space CFLAGS.

LUA         ?= lua5.4
LUA_INCDIR  ?= /usr/include/lua5.4
LIBBPF_INCDIR ?= /usr/include
LIBBPF_LIBDIR ?= /usr/lib/$(shell gcc -print-multiarch 2>/dev/null)
CC          ?= cc
CFLAGS      ?= -O2 -fPIC
LIBFLAG     ?= -shared
CLANG       ?= clang
BPFTOOL     ?= bpftool
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
PREFIX      ?= /usr/local
INST_LIBDIR ?= $(PREFIX)/lib/lua/5.4
INST_LUADIR ?= $(PREFIX)/share/lua/5.4
INST_BINDIR ?= $(PREFIX)/bin
BUSTED      ?= busted --lua=$(LUA)
# guests for make test: a set (ci: spec/run's CI_KERNELS; all: the whole
# matrix) or kernel ids (spec/vm/run): make test KERNELS="6.1 6.12-rt"
KERNELS     ?= ci

B := build
ARCH := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')

# The kernel's types come from a checked-in vmlinux.h per architecture (as in
# libbpf-tools), so the build needs no kernel BTF: see "vmlinux.h" below.
VMLINUX_DIR := bpf/vmlinux/$(ARCH)
VMLINUX_H   := $(VMLINUX_DIR)/vmlinux.h

BPF_CFLAGS := $(BPF_TEST_CFLAGS) -g -O2 -target bpf -mcpu=v2 -D__TARGET_ARCH_$(ARCH) \
	-I$(VMLINUX_DIR) -Ibpf -I$(LIBBPF_INCDIR) -Wall -Wno-unused-function
EXT_CFLAGS := $(CFLAGS) -std=gnu11 -Wall -Wextra -Wno-unused-parameter \
	-I$(B) -Ibpf -Iluaext -I$(LUA_INCDIR) -I$(LIBBPF_INCDIR)
EXT_LIBS   := -L$(LIBBPF_LIBDIR) -lbpf -lelf -lz -lpcap

EXT_SRCS := $(wildcard luaext/*.c)
EXT_HDRS := $(wildcard luaext/*.h) bpf/tcpinspect.h bpf/ti_table.h bpf/ti_parse.h bpf/ti_rules.h bpf/ti_cbpf.h bpf/ti_conn.h $(B)/tcpinspect.skel.h
CORE_SO  := $(B)/tcpinspect/core.so

.PHONY: all clean check test test-unit test-host test-vm vm-selftest clobber-check bench bench-vm soak fuzz deps \
	install uninstall luarocks-provided lint format format-check run demo vmlinux-h vmlinux-h-vm

all: $(CORE_SO)

# Checked in, never made by the build: only "make vmlinux-h" writes it.
$(VMLINUX_H):
	@echo "tcpinspect: no vmlinux.h for architecture '$(ARCH)' (uname -m: $(shell uname -m)):" \
		"$@ is not in the source tree. Generate it on a $(ARCH) machine with kernel BTF:" \
		"make vmlinux-h (doc/HACKING.md)" >&2; exit 1

$(B)/tcpinspect.bpf.o: bpf/tcpinspect.bpf.c bpf/tcpinspect.h bpf/ti_table.h bpf/ti_parse.h bpf/ti_rules.h bpf/ti_cbpf.h bpf/ti_conn.h $(VMLINUX_H)
	@mkdir -p $(B)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(B)/tcpinspect.skel.h: $(B)/tcpinspect.bpf.o
	$(BPFTOOL) gen skeleton $< name tcpinspect_bpf > $@.tmp && mv $@.tmp $@

$(CORE_SO): $(EXT_SRCS) $(EXT_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(EXT_CFLAGS) $(LIBFLAG) -o $@ $(EXT_SRCS) $(EXT_LIBS)

clean:
	rm -rf $(B)

# ---- vmlinux.h: generated, checked in, refreshed by hand ---------------------
# The CO-RE programs relocate against the running kernel's BTF at load time,
# so the header only has to declare the types they use.  It is dumped from the
# oldest supported kernel (Debian 12's 6.1), so nothing newer slips in.
#   make vmlinux-h                      from VMLINUX_BTF (default: this kernel)
#   make vmlinux-h VMLINUX_BTF=FILE VMLINUX_KERNEL='what FILE is'
#   make vmlinux-h-vm [KERNEL=6.1]      from a Debian kernel booted by spec/vm/run
VMLINUX_KERNEL ?= $(if $(filter /sys/kernel/btf/vmlinux,$(VMLINUX_BTF)),$(shell cat /proc/version),unknown (set VMLINUX_KERNEL))
VMLINUX_FROM   ?= $(VMLINUX_BTF) on $(shell uname -n)
sq = '$(subst ','\'',$(1))'

vmlinux-h:
	@test -r '$(VMLINUX_BTF)' || { echo "vmlinux-h: cannot read '$(VMLINUX_BTF)': set VMLINUX_BTF to a kernel BTF file" >&2; exit 1; }
	@mkdir -p $(VMLINUX_DIR)
	{ printf '/* Generated, do not edit: the kernel types for bpf/tcpinspect.bpf.c ($(ARCH)).\n *\n'; \
	  printf ' * Kernel:  %s\n' $(call sq,$(VMLINUX_KERNEL)); \
	  printf ' * BTF:     %s\n' $(call sq,$(VMLINUX_FROM)); \
	  printf ' * Command: bpftool btf dump file %s format c (%s)\n' $(call sq,$(VMLINUX_BTF)) "$$($(BPFTOOL) version | head -1)"; \
	  printf ' * Refresh: make vmlinux-h-vm, or make vmlinux-h (doc/HACKING.md)\n */\n'; \
	  $(BPFTOOL) btf dump file $(call sq,$(VMLINUX_BTF)) format c; } > $(VMLINUX_H).tmp
	mv $(VMLINUX_H).tmp $(VMLINUX_H)
	@echo "wrote $(VMLINUX_H): $$(wc -c < $(VMLINUX_H)) bytes from $(VMLINUX_BTF)"

# The guest prints its /proc/version and its BTF (gzip, base64) on stdout.
vmlinux-h-vm:
	@[ '$(ARCH)' = x86 ] || { echo "vmlinux-h-vm: the qemu guests are x86_64, this is $(ARCH)" >&2; exit 1; }
	@mkdir -p $(B)
	spec/vm/run $(or $(KERNEL),6.1) -- sh -c 'echo "$$TCPINSPECT_VM_KERNEL_PKG: $$(cat /proc/version)" && gzip -c /sys/kernel/btf/vmlinux | base64' \
		> $(B)/vm-btf.txt
	tail -n +2 $(B)/vm-btf.txt | base64 -d | gunzip > $(B)/vm-vmlinux.btf
	$(MAKE) vmlinux-h VMLINUX_BTF=$(B)/vm-vmlinux.btf VMLINUX_KERNEL="$$(head -1 $(B)/vm-btf.txt)" \
		VMLINUX_FROM="its /sys/kernel/btf/vmlinux, copied out of a spec/vm/run $(or $(KERNEL),6.1) guest"

# ---- the command-line runner ------------------------------------------------
# lua/tcpinspect/cli.lua holds the code; the launchers are three-line Lua
# scripts: this one with the checkout's paths (make run/demo, specs), the
# installed one with none (LuaRocks wraps it with the tree's paths).
LUA_PATH_ABS := $(shell command -v $(LUA) 2>/dev/null || echo /usr/bin/$(LUA))

$(B)/bin/tcpinspect: Makefile
	@mkdir -p $(dir $@)
	printf '#!%s\n-- tcpinspect command, run from the checkout\npackage.path = "%s/lua/?.lua;%s/lua/?/init.lua;" .. package.path\npackage.cpath = "%s/$(B)/?.so;" .. package.cpath\nos.exit(require("tcpinspect.cli").main(arg), true)\n' \
		'$(LUA_PATH_ABS)' '$(CURDIR)' '$(CURDIR)' '$(CURDIR)' > $@
	chmod +x $@

all: $(B)/bin/tcpinspect

# ---- tests --------------------------------------------------------------------
# Test helpers built from spec/support: the bpf() failure-injection shim.
FAILINJ_SO := $(B)/failinj.so
$(FAILINJ_SO): spec/support/failinj.c
	@mkdir -p $(B)
	$(CC) -O2 -fPIC -shared -Wall -Wextra -o $@ $< -ldl

# make test: unit specs, kernel specs on this machine's kernel, then the
# kernel specs inside the qemu guests (KERNELS).  Ends with "N passed, N failed".
test: all $(FAILINJ_SO)
	spec/run all $(KERNELS)

test-host: all $(FAILINJ_SO)
	spec/run host

# make check: the host tier only (lint, unit, kernel specs on this kernel,
# the kernel-layer harness), a few minutes: for use between edits.  Root for
# the kernel specs; make test adds the guests.
check: all $(FAILINJ_SO)
	spec/run host

test-unit: all $(FAILINJ_SO)
	spec/run unit

test-vm: all $(FAILINJ_SO)
	spec/run vm $(or $(KERNEL),6.12)

KERNEL_IDS = $(shell spec/run kernels $(KERNELS))

vm-selftest:
	spec/vm/selftest $(KERNEL_IDS)

# make clobber-check [KERNEL=6.12-rt]: spec/32 must FAIL with a test build
# whose scratch is shared by all CPUs (-DTI_TEST_CLOBBER, never in a real
# build: bpf/tcpinspect.bpf.c), on this kernel (tc, cgroup) and, with
# KERNEL, in that guest (every mode): proof that the spec sees clobbered
# records.  Each run must report bad or duplicated records.
CLOBBER_B := $(B)/clobber
clobber-check:
	$(MAKE) --no-print-directory B=$(CLOBBER_B) BPF_TEST_CFLAGS=-DTI_TEST_CLOBBER $(CLOBBER_B)/tcpinspect/core.so
	spec/clobber-check $(CURDIR)/$(CLOBBER_B) $(KERNEL)

# ---- install, uninstall (LuaRocks: INST_LIBDIR, INST_LUADIR, INST_BINDIR) -----
# make install [PREFIX=/usr/local] [DESTDIR=staging]: the module, its Lua
# files and the command.  The command puts the directories it was installed
# to first on its paths, so it runs with no LUA_PATH for any PREFIX (the
# default one is on lua5.4's own path: `require "tcpinspect"` works from
# anywhere).  LuaRocks wraps its commands with the tree's paths itself: the
# rockspec sets BIN_PATHS=no.
# make uninstall (same PREFIX/DESTDIR) removes exactly those files, then the
# project's own directories (tcpinspect/) when empty; the shared ones
# (bin/, lib/lua/5.4/, share/lua/5.4/) stay.
BIN_PATHS ?= yes
INSTALLED_LUA := tcpinspect.lua $(addprefix tcpinspect/,$(notdir $(wildcard lua/tcpinspect/*.lua)))
bin_paths = $(if $(filter yes,$(BIN_PATHS)),package.path = "$(INST_LUADIR)/?.lua;$(INST_LUADIR)/?/init.lua;" .. package.path\npackage.cpath = "$(INST_LIBDIR)/?.so;" .. package.cpath\n)

install: all
	install -d $(DESTDIR)$(INST_LIBDIR)/tcpinspect $(DESTDIR)$(INST_LUADIR)/tcpinspect \
		$(DESTDIR)$(INST_BINDIR)
	install -m 755 $(CORE_SO) $(DESTDIR)$(INST_LIBDIR)/tcpinspect/core.so
	install -m 644 lua/tcpinspect.lua $(DESTDIR)$(INST_LUADIR)/tcpinspect.lua
	install -m 644 lua/tcpinspect/*.lua $(DESTDIR)$(INST_LUADIR)/tcpinspect/
	printf '#!%s\n-- tcpinspect command\n$(bin_paths)os.exit(require("tcpinspect.cli").main(arg), true)\n' '$(LUA_PATH_ABS)' \
		> $(DESTDIR)$(INST_BINDIR)/tcpinspect
	chmod 755 $(DESTDIR)$(INST_BINDIR)/tcpinspect

uninstall:
	rm -f $(DESTDIR)$(INST_BINDIR)/tcpinspect $(DESTDIR)$(INST_LIBDIR)/tcpinspect/core.so \
		$(addprefix $(DESTDIR)$(INST_LUADIR)/,$(INSTALLED_LUA))
	-rmdir $(DESTDIR)$(INST_LIBDIR)/tcpinspect $(DESTDIR)$(INST_LUADIR)/tcpinspect 2>/dev/null

# ---- setup, main job, benchmarks ---------------------------------------------
# Debian 12 packages: build, run, test (qemu guests), compare (peers).
DEB_PACKAGES := make gcc clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool \
	lua5.4 liblua5.4-dev luarocks lua-busted lua-dkjson lua-argparse lua-socket \
	lua-posix lua-check lua-cqueues clang-format prometheus qemu-system-x86 busybox-static cpio kmod xz-utils \
	iproute2 tcpdump hping3 bpftrace netcat-openbsd libcap2-bin procps \
	libpcap-dev tshark tcpreplay iperf3 curl nftables ethtool

deps:
	@if dpkg-query -W -f='$${Status}\n' $(DEB_PACKAGES) 2>/dev/null | grep -qv 'ok installed' || \
	    [ $$(dpkg-query -W -f='$${Status}\n' $(DEB_PACKAGES) 2>/dev/null | wc -l) -lt $(words $(DEB_PACKAGES)) ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(DEB_PACKAGES); \
	else echo "deps: all $(words $(DEB_PACKAGES)) Debian packages present"; fi
	@$(MAKE) --no-print-directory luarocks-provided

# LuaRocks and Debian's Lua packages: the rockspec's dependencies are rocks
# (argparse, dkjson, luasocket); Debian installs the same modules outside any
# rocks tree, where LuaRocks does not look.  LuaRocks' own mechanism for
# rocks the system provides is `rocks_provided` in its config: make deps
# writes it into the system config of Lua 5.4, one entry per package below
# (ROCK:DEBIAN-PACKAGE, the version the package's upstream one), between two
# marker lines that a later make deps replaces; and Debian's multiarch
# library directory (libbpf's), which LuaRocks finds only by asking gcc: a
# binary rock (`luarocks pack`) then installs on a machine with no
# compiler.  (`luarocks config --scope system` would rewrite the whole file
# and expand Debian's `home..` entry to root's home, so the block is
# written here.)  Written only when it changes: a user who cannot write
# the file gets an error only when it is out of date.
# LUAROCKS_SYSCONFDIR is LuaRocks' own variable for that directory.
LUAROCKS_SYSCONFDIR ?= /etc/luarocks
DEB_ROCKS := argparse:lua-argparse dkjson:lua-dkjson luasocket:lua-socket
MULTIARCH := $(or $(shell gcc -print-multiarch 2>/dev/null),$(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null))
LR_BEGIN := -- BEGIN make deps (tcpinspect): rocks provided by Debian packages
LR_END   := -- END make deps (tcpinspect)

luarocks-provided:
	@f='$(LUAROCKS_SYSCONFDIR)/config-5.4.lua'; \
	if [ ! -d '$(LUAROCKS_SYSCONFDIR)' ]; then echo "luarocks-provided: no $(LUAROCKS_SYSCONFDIR) (is luarocks installed?)" >&2; exit 1; fi; \
	block=$$( echo '$(LR_BEGIN)'; \
	  echo 'rocks_provided = rocks_provided or {}'; \
	  for rd in $(DEB_ROCKS); do rock=$${rd%%:*}; deb=$${rd#*:}; \
	    v=$$(dpkg-query -W -f='$${Version}' $$deb 2>/dev/null) || { echo "luarocks-provided: $$deb is not installed (make deps)" >&2; exit 1; }; \
	    up=$$(echo "$$v" | sed 's/^[0-9]*://; s/-[^-]*$$//; s/[~+].*$$//'); \
	    echo "rocks_provided[\"$$rock\"] = \"$$up-1\" -- Debian $$deb $$v"; done; \
	  echo '-- the multiarch library directory, where LuaRocks looks only when gcc is there to name it'; \
	  echo 'external_deps_subdirs = { lib = { "lib", "lib/$(MULTIARCH)", "lib64" } }'; \
	  echo 'runtime_external_deps_subdirs = { lib = { "lib", "lib/$(MULTIARCH)", "lib64" } }'; \
	  echo '$(LR_END)' ) || exit 1; \
	old=$$(sed -n '/^$(LR_BEGIN)/,/^$(LR_END)/p' "$$f" 2>/dev/null); \
	if [ "$$old" = "$$block" ]; then echo "luarocks-provided: $$f is up to date"; exit 0; fi; \
	rest=$$(sed '/^$(LR_BEGIN)/,/^$(LR_END)/d' "$$f" 2>/dev/null); \
	t=$$(mktemp) && { [ -z "$$rest" ] || printf '%s\n' "$$rest"; printf '%s\n' "$$block"; } > "$$t" && \
	{ cat "$$t" > "$$f" || { rm -f "$$t"; exit 1; }; } && rm -f "$$t" && \
	echo "luarocks-provided: $$f: rocks_provided $$(echo "$$block" | sed -n 's/^rocks_provided\["\([^"]*\)"\] = "\([^"]*\)".*/\1 \2/p' | paste -sd, -)"

# The main job: a live report of incoming TCP on this machine (Ctrl-C ends it),
# from the checkout's build (the README's `make deps install run` installs
# the same build first).
run: all
	$(B)/bin/tcpinspect top

# A few seconds of `top` against loopback traffic generated here.
demo: all
	$(LUA) examples/demo_traffic.lua --duration 6 >/dev/null & \
	$(B)/bin/tcpinspect top --duration 5 --port 18000-18999; \
	rc=$$?; wait; exit $$rc

bench: all
	spec/bench/run

# In the qemu guests: fentry against kprobe, by the kernel's own accounting of
# the programs' run time (absolute times mean nothing under emulation).
bench-vm: all
	for k in $(KERNEL_IDS); do spec/vm/run $$k -- lua5.4 spec/bench/probe_cost.lua fentry,kprobe,tc 3 2 || exit 1; done

# RELIABILITY.md #6 (60 s at the highest rate, dropped == 0) and #20 (10
# minutes at a steady rate, RSS and Lua heap flat), asserting; about 11
# minutes.  SOAK_RATE_SECS / SOAK_MEMORY_SECS shorten them.
soak: all
	spec/soak/run all

fuzz: all
	spec/fuzz/run

# make lint: luacheck, then the format check below (spec/run's lint suite
# runs it: make check, make test).
lint: format-check
	luacheck lua spec examples

# The formatter: clang-format with .clang-format for the C (bpf/vmlinux/ is
# generated: not formatted), tools/lua-indent for the Lua (tabs).
# make format applies both; make format-check changes nothing and fails on
# a file either would change (CONTRIBUTING.md, "Style").
CLANG_FORMAT ?= clang-format
FORMAT_C   := $(wildcard bpf/*.c bpf/*.h luaext/*.c luaext/*.h spec/fuzz/*.c spec/support/*.c)
FORMAT_LUA  = $(sort $(shell find lua spec examples tools -name '*.lua' -type f 2>/dev/null) tools/lua-indent \
	$(wildcard *.rockspec) .busted .luacheckrc)

format:
	$(CLANG_FORMAT) -i $(FORMAT_C)
	$(LUA) tools/lua-indent $(FORMAT_LUA)

format-check:
	$(CLANG_FORMAT) --dry-run -Werror $(FORMAT_C)
	$(LUA) tools/lua-indent --check $(FORMAT_LUA)
