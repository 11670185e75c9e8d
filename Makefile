# camera_exporter

GO          ?= go
PROMTOOL    ?= promtool
BIN         ?= camera_exporter
VERSION     ?= $(shell cat VERSION)
REVISION    ?= $(shell git rev-parse HEAD 2>/dev/null)
BRANCH      ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null)
MODELS_URL  ?= https://raw.githubusercontent.com/dog-qiuqiu/Yolo-Fastest/96a2900d163196c396e73f3fdab04ca4dd9a2f70
MODELS_DEST ?= models
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.7.0
SOAK_DURATION ?= 30m

# make install: GNU-style directories. The unit reads its configuration from
# $(SYSCONFDIR); the models go to $(STATEDIR)/models. systemd looks for units
# and sysusers.d entries under /usr/lib, /usr/local/lib and /etc only.
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
SYSCONFDIR  ?= /etc
STATEDIR    ?= /var/lib/camera_exporter
SYSTEMDDIR  ?= $(if $(filter /usr /usr/local,$(PREFIX)),$(PREFIX)/lib,/etc)
UNITDIR     ?= $(SYSTEMDDIR)/systemd/system
SYSUSERSDIR ?= $(SYSTEMDDIR)/sysusers.d
INSTALL     ?= install
CONFIG_DIR   = $(SYSCONFDIR)/camera_exporter
# $(call unless_exists,PATH,COMMAND) runs COMMAND unless PATH exists.
unless_exists = if [ -e $(1) ] || [ -L $(1) ]; then echo "$(1) exists, kept"; \
                else echo "$(strip $(2))"; $(2); fi

VERSION_PKG := github.com/prometheus/common/version
LDFLAGS := -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Revision=$(REVISION) \
           -X $(VERSION_PKG).Branch=$(BRANCH) -X $(VERSION_PKG).BuildUser=$(USER) \
           -X $(VERSION_PKG).BuildDate=$(shell date -u +%Y%m%d-%H:%M:%S)

.PHONY: all deps build models install uninstall test vet staticcheck race nocgo matprofile dashboards fuzz demo bench profile soak clean

all: build

deps:
	@.ci/deps

build: deps
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) .

# The Yolo-Fastest detectors, from upstream, checked against
# deploy/models/SHA256SUMS. For a service: make models MODELS_DEST=/var/lib/camera_exporter/models
models:
	deploy/models/fetch.sh $(MODELS_DEST) $(MODELS_URL)

# The exporter as a hardened systemd service, from the binary `make build`
# made: make build && sudo make install. Binary, units and sysusers.d entry
# are replaced; an existing configuration, /etc/default file or models link
# is kept. exporter.yml holds camera passwords: mode 0640, group
# camera_exporter. Its model paths are relative to it, so
# $(CONFIG_DIR)/models is a relative link to $(STATEDIR)/models: the
# configuration stays the repository's, and the link holds in a DESTDIR as on
# the target. With DESTDIR set, the user and the group of exporter.yml are
# left to the target. The models are made readable by the exporter whatever
# the umask they were fetched with.
install:
	@test -x $(BIN) || { echo "$(BIN) not found: run make build first" >&2; exit 1; }
	$(INSTALL) -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/camera_exporter
	$(INSTALL) -d -m 0755 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(SYSCONFDIR)/default $(DESTDIR)$(CONFIG_DIR) $(DESTDIR)$(STATEDIR)
	sed -e 's|/usr/local/bin/|$(BINDIR)/|g' -e 's|/etc/camera_exporter|$(CONFIG_DIR)|g' \
		-e 's|/etc/default/|$(SYSCONFDIR)/default/|g' -e 's|/var/lib/camera_exporter|$(STATEDIR)|g' \
		deploy/systemd/camera_exporter.service > $(DESTDIR)$(UNITDIR)/camera_exporter.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/camera_exporter.service
	$(INSTALL) -m 0644 deploy/systemd/camera_exporter.socket $(DESTDIR)$(UNITDIR)/
	$(INSTALL) -m 0644 deploy/systemd/camera_exporter.sysusers $(DESTDIR)$(SYSUSERSDIR)/camera_exporter.conf
	$(if $(DESTDIR),,systemd-sysusers $(SYSUSERSDIR)/camera_exporter.conf)
	@$(call unless_exists,$(DESTDIR)$(SYSCONFDIR)/default/camera_exporter,\
		$(INSTALL) -m 0644 deploy/systemd/camera_exporter.default $(DESTDIR)$(SYSCONFDIR)/default/camera_exporter)
	@$(call unless_exists,$(DESTDIR)$(CONFIG_DIR)/exporter.yml,\
		$(INSTALL) -m 0640 $(if $(DESTDIR),,-g camera_exporter) exporter.yml $(DESTDIR)$(CONFIG_DIR)/exporter.yml)
	$(MAKE) --no-print-directory models MODELS_DEST=$(DESTDIR)$(STATEDIR)/models
	chmod -R u=rwX,go=rX $(DESTDIR)$(STATEDIR)/models
	@$(call unless_exists,$(DESTDIR)$(CONFIG_DIR)/models,\
		ln -sr $(DESTDIR)$(STATEDIR)/models $(DESTDIR)$(CONFIG_DIR)/models)
	@echo
	@$(if $(DESTDIR),echo "On the target system: create the user and let it read the configuration:"; \
		echo "  systemd-sysusers $(SYSUSERSDIR)/camera_exporter.conf"; \
		echo "  chgrp camera_exporter $(CONFIG_DIR)/exporter.yml";)
	@echo "Edit $(CONFIG_DIR)/exporter.yml and check it as the service will read it:"
	@echo "  runuser -u camera_exporter -- $(BINDIR)/camera_exporter --config.check --config.file=$(CONFIG_DIR)/exporter.yml"
	@echo "For backend: cuda, add the GPU to the sandbox:"
	@echo "  install -D -m 0644 deploy/systemd/cuda.conf /etc/systemd/system/camera_exporter.service.d/cuda.conf"
	@echo "Then start the exporter:"
	@echo "  systemctl daemon-reload"
	@echo "  systemctl enable --now camera_exporter.service"

# Removes what make install put in place, but the configuration, the models
# and the user. Stop the service first:
#   systemctl disable --now camera_exporter.service camera_exporter.socket
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/camera_exporter $(DESTDIR)$(UNITDIR)/camera_exporter.service \
		$(DESTDIR)$(UNITDIR)/camera_exporter.socket $(DESTDIR)$(SYSUSERSDIR)/camera_exporter.conf
	@echo "Kept $(CONFIG_DIR), $(SYSCONFDIR)/default/camera_exporter, $(STATEDIR) and the user camera_exporter."
	@echo "Now: systemctl daemon-reload"

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

staticcheck:
	$(GO) run $(STATICCHECK) ./...

race:
	$(GO) test -race -count=1 ./...

# The packages outside camera/decode and detector/dnn, and their tests,
# build and pass without cgo: the collectors' tests run on fakes.
NOCGO_PACKAGES = ./analysis/... ./collector/... ./config/... ./detector ./detector/onnx/... ./drift/... ./imagestats/... ./pages/... ./reference/... ./video/... ./internal/...
nocgo:
	CGO_ENABLED=0 $(GO) test -count=1 $(NOCGO_PACKAGES)

matprofile:
	$(GO) test -tags matprofile -count=1 -run Mat . ./camera/... ./detector/...

# The dashboard generator is a module of its own, so that the exporter does
# not depend on the Grafana SDK and on Prometheus' PromQL parser.
# Regenerate deploy/grafana/dashboards/camera.json with: cd deploy/grafana && go generate
dashboards:
	cd deploy/grafana && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./... && $(GO) test -count=1 ./...

# Each fuzz target for FUZZTIME, on top of its seed corpus, which go test
# runs anyway (testdata/fuzz and the targets' own seeds). A crasher is
# written to the package's testdata/fuzz: keep it there as a regression
# seed. For a longer run by hand: make fuzz FUZZTIME=10m
FUZZTIME ?= 5s
FUZZ_TARGETS = ./config:FuzzParse ./camera:FuzzNALTrack ./camera:FuzzJPEGSize \
               ./camera:FuzzDepacketize ./camera:FuzzFindTrack \
               ./detector/onnx:FuzzParseNames
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "$(GO) test -run '^\$$' -fuzz '^$${t#*:}\$$' -fuzztime $(FUZZTIME) $${t%%:*}"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) $${t%%:*}; \
	done

# The test command: everything CI runs.
test: deps vet staticcheck
	$(GO) test -count=1 ./...
	$(MAKE) --no-print-directory nocgo race matprofile dashboards fuzz

# A built-in test stream served locally and the exporter scraping it.
demo: build
	@examples/demo/run.sh ./$(BIN)

# The exporter binary against CAMERAS 1080p25 H264 cameras at 4 Mb/s,
# replayed by an in-process RTSP server, scraped every 15 s for
# BENCH_SECONDS (60) in each of BENCH_MODES (stream, keyframe,
# keyframe+detect, all; all is skipped above 8 cameras unless named): one
# line per mode, of CPU-s per camera-minute, scrape p50 and max, RSS and
# packets lost (see BenchmarkExporter). The README's numbers are of
# make bench CAMERAS=4, 32 and 100. First the per-frame decode and
# detector costs; BENCH_MICRO=0 skips them.
CAMERAS       ?= 4
BENCH_MICRO   ?= 1
BENCH_ENV      = BENCH_CAMERAS=$(CAMERAS) $(if $(BENCH_SECONDS),BENCH_SECONDS=$(BENCH_SECONDS))
bench: deps
	$(if $(filter 0,$(BENCH_MICRO)),,$(GO) test -run '^$$' -bench . -benchtime 20x ./camera/decode/ ./detector/... ./collector/)
	$(BENCH_ENV) $(if $(BENCH_MODES),BENCH_MODES=$(BENCH_MODES)) $(GO) test -run '^$$' -bench '^BenchmarkExporter$$' -benchtime 1x -timeout 60m ./e2e/

# A CPU profile of the exporter (min(30 s, BENCH_SECONDS)) while it serves
# CAMERAS cameras in the first of BENCH_MODES (stream by default), written
# to PROFILE, and its top functions. The exporter serves it with
# --web.enable-pprof. Look further with: go tool pprof -http=: $(PROFILE)
PROFILE ?= cpu.pprof
profile: deps
	$(BENCH_ENV) BENCH_MODES=$(or $(BENCH_MODES),stream) BENCH_PROFILE=$(abspath $(PROFILE)) \
		$(GO) test -run '^$$' -bench '^BenchmarkExporter$$' -benchtime 1x -timeout 60m ./e2e/
	$(GO) tool pprof -top -nodecount=40 $(PROFILE)

# 24 cameras, healthy and misbehaving, for SOAK_DURATION; TestSoak ends
# itself after it, hence no test timeout.
soak: deps
	$(GO) test -run '^TestSoak$$' -v -timeout 0 ./e2e/ -args -soak=$(SOAK_DURATION)

clean:
	rm -f $(BIN)
