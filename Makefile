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
KERNELS     ?= 6.1 6.12

B := build
ARCH := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')

BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) \
	-I$(B) -Ibpf -I$(LIBBPF_INCDIR) -Wall -Wno-unused-function
EXT_CFLAGS := $(CFLAGS) -std=gnu11 -Wall -Wextra -Wno-unused-parameter \
	-I$(B) -Ibpf -Iluaext -I$(LUA_INCDIR) -I$(LIBBPF_INCDIR)
EXT_LIBS   := -L$(LIBBPF_LIBDIR) -lbpf -lelf -lz

EXT_SRCS := $(wildcard luaext/*.c)
EXT_HDRS := $(wildcard luaext/*.h) bpf/tcpinspect.h $(B)/tcpinspect.skel.h
CORE_SO  := $(B)/tcpinspect/core.so

.PHONY: all clean test test-unit test-host test-vm vm-selftest bench fuzz deps \
	install lint docs-check run demo

all: $(CORE_SO)

$(B)/vmlinux.h:
	@mkdir -p $(B)
	$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > $@.tmp && mv $@.tmp $@

$(B)/tcpinspect.bpf.o: bpf/tcpinspect.bpf.c bpf/tcpinspect.h $(B)/vmlinux.h
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(B)/tcpinspect.skel.h: $(B)/tcpinspect.bpf.o
	$(BPFTOOL) gen skeleton $< name tcpinspect_bpf > $@.tmp && mv $@.tmp $@

$(CORE_SO): $(EXT_SRCS) $(EXT_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(EXT_CFLAGS) $(LIBFLAG) -o $@ $(EXT_SRCS) $(EXT_LIBS)

clean:
	rm -rf $(B)

# ---- the command-line runner ------------------------------------------------
# lua/tcpinspect/cli.lua holds the code; the launchers are three-line Lua
# scripts: this one with the checkout's paths (make run/demo, specs), the
# installed one with none (LuaRocks wraps it with the tree's paths).
LUA_PATH_ABS := $(shell command -v $(LUA) 2>/dev/null || echo /usr/bin/$(LUA))

$(B)/bin/tcpinspect: Makefile
	@mkdir -p $(dir $@)
	printf '#!%s\n-- tcpinspect command, run from the checkout\npackage.path = "%s/lua/?.lua;%s/lua/?/init.lua;" .. package.path\npackage.cpath = "%s/$(B)/?.so;" .. package.cpath\nos.exit(require("tcpinspect.cli").main(arg))\n' \
		'$(LUA_PATH_ABS)' '$(CURDIR)' '$(CURDIR)' '$(CURDIR)' > $@
	chmod +x $@

all: $(B)/bin/tcpinspect

# ---- tests --------------------------------------------------------------------
# make test: unit specs, kernel specs on this machine's kernel, then the
# kernel specs inside the qemu guests (KERNELS).  Ends with "N passed, N failed".
test: all
	spec/run all $(KERNELS)

test-host: all
	spec/run host

test-unit: all
	spec/run unit

test-vm: all
	spec/run vm $(or $(KERNEL),6.12)

vm-selftest:
	spec/vm/selftest $(KERNELS)

# ---- install (LuaRocks: INST_LIBDIR, INST_LUADIR, INST_BINDIR) -----------------
install: all
	install -d $(DESTDIR)$(INST_LIBDIR)/tcpinspect $(DESTDIR)$(INST_LUADIR)/tcpinspect \
		$(DESTDIR)$(INST_BINDIR)
	install -m 755 $(CORE_SO) $(DESTDIR)$(INST_LIBDIR)/tcpinspect/core.so
	install -m 644 lua/tcpinspect.lua $(DESTDIR)$(INST_LUADIR)/tcpinspect.lua
	install -m 644 lua/tcpinspect/*.lua $(DESTDIR)$(INST_LUADIR)/tcpinspect/
	printf '#!%s\n-- tcpinspect command\nos.exit(require("tcpinspect.cli").main(arg))\n' '$(LUA_PATH_ABS)' \
		> $(DESTDIR)$(INST_BINDIR)/tcpinspect
	chmod 755 $(DESTDIR)$(INST_BINDIR)/tcpinspect

# ---- setup, main job, benchmarks ---------------------------------------------
# Debian 12 packages: build, run, test (qemu guests), compare (peers).
DEB_PACKAGES := make gcc clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool \
	lua5.4 liblua5.4-dev luarocks lua-busted lua-dkjson lua-argparse lua-socket \
	lua-posix lua-check lua-cqueues prometheus qemu-system-x86 busybox-static cpio kmod xz-utils \
	iproute2 tcpdump hping3 bpftrace netcat-openbsd libcap2-bin procps

deps:
	@if dpkg-query -W -f='$${Status}\n' $(DEB_PACKAGES) 2>/dev/null | grep -qv 'ok installed' || \
	    [ $$(dpkg-query -W -f='$${Status}\n' $(DEB_PACKAGES) 2>/dev/null | wc -l) -lt $(words $(DEB_PACKAGES)) ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(DEB_PACKAGES); \
	else echo "deps: all $(words $(DEB_PACKAGES)) Debian packages present"; fi

# The main job: a live report of incoming TCP on this machine (Ctrl-C ends it).
run: all
	$(B)/bin/tcpinspect top

# A few seconds of `top` against loopback traffic generated here.
demo: all
	$(LUA) examples/demo_traffic.lua --duration 6 >/dev/null & \
	$(B)/bin/tcpinspect top --duration 5 --port 18000-18999; \
	rc=$$?; wait; exit $$rc

bench: all
	spec/bench/run

fuzz: all
	spec/fuzz/run

lint:
	luacheck lua spec examples
