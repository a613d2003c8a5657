# magibake: `make demo` bakes the example cluster offline, `make test` runs
# every test (the command CI runs). Both install the disk tools they need with
# apt-get when run as root, or stop and print the apt-get line otherwise.

GO            ?= go
APT_PACKAGES  := e2fsprogs dosfstools mtools isc-dhcp-server xz-utils zstd time fdisk iptables systemd openssh-client shellcheck sudo ansible-core mount util-linux qemu-user-static btrfs-progs
TOOLS         := e2fsck debugfs dumpe2fs mkfs.ext4 mkfs.vfat fsck.fat mcopy mtype mdir dhcpd xz zstd sfdisk iptables-restore systemd-analyze ssh-keygen shellcheck visudo ansible-inventory losetup blkdiscard mount qemu-arm-static mkfs.btrfs
# The emulated cluster (make e2e): an arm64 rootfs built under qemu-user, three
# guests under qemu-system-aarch64 in a network namespace.
E2E_APT_PACKAGES := qemu-system-arm qemu-utils qemu-user-static binfmt-support mmdebstrap arch-test iproute2 openssl ca-certificates dnsmasq-base
E2E_TOOLS     := qemu-system-aarch64 qemu-img qemu-aarch64-static update-binfmts mmdebstrap ip openssl dnsmasq
export PATH   := $(PATH):/usr/sbin:/sbin

DEMO          := demo
.PHONY: all build test unit lint e2e fuzz bench demo tools e2e-tools fixture clean print-apt-packages

all: build

# The version the binary and every manifest report: the tag on a tagged
# commit, else the commit; "-dirty" when tracked files have changes.
VERSION ?= $(shell git describe --tags --always --dirty --abbrev=12 2>/dev/null || echo dev)
build:
	$(GO) build -ldflags "-X github.com/magibake/magibake/internal/cli.Version=$(VERSION)" -o bin/magibake ./cmd/magibake

# The whole suite; .ci/run calls exactly this. The emulated cluster needs
# root (network namespaces, the rootfs build): run as root or with sudo.
# The unit tests and the emulated cluster run one after the other, never
# side by side: both are CPU-bound on 2 cores, and run beside the cluster
# (even at nice 19) the unit tests' disk-heavy bakes slowed its guests by
# more than the unit tests take alone (bookworm's cluster test: 919 s beside
# them in fresh run 4, 645 s alone with the same bases). Both always run;
# the summary gives each one's exit status.
test: tools
	@u=0; $(MAKE) --no-print-directory unit || u=$$?; \
	e2e=0; $(MAKE) --no-print-directory e2e || e2e=$$?; \
	[ $$u = 0 ] && [ $$e2e = 0 ] || { echo "make test: make unit exit $$u, make e2e exit $$e2e"; exit 1; }

# Everything but the emulated cluster.
unit: tools
	$(GO) vet ./...
	$(MAKE) lint
	$(GO) test -timeout 45m ./...
	# 32-bit ints, as on 32-bit Pi OS (armhf) hosts, run by qemu-user: some
	# kernels run no i386 code at all (this one's IA-32 emulation is off:
	# GOARCH=386 failed with "exec format error"), and Go's 386 binaries
	# crash under qemu-i386 7.2. The emulated run starts no xz (qemu-user 7.2
	# sometimes hangs a Go program that starts a process): it decodes what
	# the host's xz made for the native run just before.
	@d="$$(mktemp -d)"; \
	MAGIBAKE_XZ_RECORD="$$d" $(GO) test -count=1 ./internal/lzma2 && \
	MAGIBAKE_XZ_REPLAY="$$d" GOARCH=arm GOARM=7 $(GO) test -count=1 -exec qemu-arm-static ./internal/lzma2; \
	rc=$$?; rm -rf "$$d"; exit $$rc
	$(MAKE) fuzz

# actionlint on .github/workflows, built by go run at a pinned version from
# the Go module proxy: nothing to install. The module cache is asked first,
# so once fetched it runs offline (about 20 s the first time, under a second
# after). shellcheck checks the run: scripts; actionlint would silently skip
# them without it, so its absence is an error.
ACTIONLINT    := github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
lint:
	@command -v shellcheck >/dev/null || { echo "lint: shellcheck not found: sudo apt-get install -y shellcheck"; exit 1; }
	GOPROXY="file://$$($(GO) env GOMODCACHE)/cache/download,$$($(GO) env GOPROXY)" \
		$(GO) run $(ACTIONLINT) -shellcheck="$$(command -v shellcheck)" -pyflakes=

# Every fuzz target, so CI fuzzes every run (go test alone runs only the
# seeds). Budgets are exec counts, about 15 s each here, not durations: a
# -fuzztime duration races Go's coordinator at its deadline and fails with
# "context deadline exceeded" and no crasher (it did in CI on FuzzOpenBase).
# Minimizing a new interesting input is capped too: by default it may take
# 60 s per input, during which nothing is fuzzed. FUZZTIME=2m (or 1000000x)
# overrides every budget. See docs/reliability.md.
FUZZTIME      ?=
FUZZ_TARGETS  := internal/profile:FuzzLoad:80000x internal/ext4:FuzzCorruptImage:6500x \
                 internal/image:FuzzReadLayout:20000x internal/image:FuzzOpenBase:18000x \
                 internal/bake:FuzzApply:800x internal/xzblocks:FuzzReader:220000x \
                 internal/lzma2:FuzzDecode:170000x internal/check:FuzzEvaluate:15000x
fuzz: tools
	@set -e; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; \
		budget=$${FUZZTIME:-$${rest#*:}}; echo "== $$pkg $$name $$budget"; \
		$(GO) test ./$$pkg -run '^$$' -fuzz "^$$name\$$" -fuzztime $$budget -fuzzminimizetime 20x; done

# Issue 6's table: magibake against xz/zstd on a Pi-OS-sized card (built
# once, about 10 minutes, cached beside the fixtures). Not in `make test`:
# it takes 10-20 minutes and its figures are ratios for a person to read.
bench: tools
	scripts/bench

# Boot the three baked cards as a cluster under QEMU and check them.
e2e: tools e2e-tools
	@if [ "$$(id -u)" = 0 ]; then scripts/cluster-test; else sudo env "PATH=$$PATH" scripts/cluster-test; fi

# $(call install_missing,TOOLS,PACKAGES): install PACKAGES with apt-get when
# one of TOOLS is missing (as root), or print the apt-get line and stop.
define install_missing
	@missing=""; for t in $(1); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	echo "missing tools:$$missing"; \
	if [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(2); \
	else \
		echo "install them with:"; echo "  sudo apt-get install -y $(2)"; exit 1; \
	fi
endef

tools:
	$(call install_missing,$(TOOLS),$(APT_PACKAGES))

e2e-tools:
	$(call install_missing,$(E2E_TOOLS),$(E2E_APT_PACKAGES))

print-apt-packages:
	@echo $(APT_PACKAGES) $(E2E_APT_PACKAGES)

# A Pi-OS-shaped base built offline (about a minute), then the three cards.
demo: tools
	@mkdir -p $(DEMO)/out
	@[ -f $(DEMO)/base.img.xz ] || scripts/make-fixture-image $(DEMO)/base.img
	@[ -f $(DEMO)/id_ed25519 ] || ssh-keygen -q -t ed25519 -N '' -C magibake-demo -f $(DEMO)/id_ed25519
	@$(MAKE) --no-print-directory build
	. scripts/demo.env && bin/magibake build caspar balthasar melchior --base $(DEMO)/base.img.xz --out-dir $(DEMO)/out
	@echo
	@echo "Cards in $(DEMO)/out (demo login: pi / raspberry, or ssh -i $(DEMO)/id_ed25519)."
	@echo "See one: bin/magibake inspect $(DEMO)/out/caspar.img"
	@echo "Plan and compare with the demo's settings: . scripts/demo.env; bin/magibake diff $(DEMO)/out/caspar.img"
	@echo "Flash one: sudo bin/magibake flash $(DEMO)/out/caspar.img /dev/sdX   (README: a loop device instead of a card)"

fixture:
	scripts/make-fixture-image $(DEMO)/base.img

clean:
	rm -rf bin $(DEMO)
