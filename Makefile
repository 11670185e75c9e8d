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

VERSION_PKG := github.com/prometheus/common/version
LDFLAGS := -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Revision=$(REVISION) \
           -X $(VERSION_PKG).Branch=$(BRANCH) -X $(VERSION_PKG).BuildUser=$(USER) \
           -X $(VERSION_PKG).BuildDate=$(shell date -u +%Y%m%d-%H:%M:%S)

.PHONY: all deps build models test vet staticcheck race matprofile demo bench clean

all: build

deps:
	@.ci/deps

build: deps
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) .

# The Yolo-Fastest detectors, from upstream, checked against
# deploy/models/SHA256SUMS. For a service: make models MODELS_DEST=/var/lib/camera_exporter/models
models:
	deploy/models/fetch.sh $(MODELS_DEST) $(MODELS_URL)

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

staticcheck:
	$(GO) run $(STATICCHECK) ./...

race:
	$(GO) test -race -count=1 ./...

matprofile:
	$(GO) test -tags matprofile -count=1 -run Mat . ./camera/... ./detector/...

# The test command: everything CI runs.
test: deps vet staticcheck
	$(GO) test -count=1 ./...
	$(MAKE) --no-print-directory race matprofile

# A built-in test stream served locally and the exporter scraping it.
demo: build
	@examples/demo/run.sh ./$(BIN)

# CPU seconds per camera-minute and RSS, keyframe vs full decoding, and the
# per-frame decode costs. Numbers go to the README.
bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 20x ./camera/decode/ ./detector/...
	$(GO) test -run '^$$' -bench BenchmarkExporter -benchtime 1x -timeout 30m .

clean:
	rm -f $(BIN)
