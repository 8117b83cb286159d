# Postback — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
SERVICES := standalone gateway renderer sender retry historian
# go.work's root is not a module: name every module's packages.
MODULES = $(shell go list -m | sed 's|$$|/...|')
TOOLS := bin/buf bin/protoc-gen-go bin/protoc-gen-go-grpc bin/nats-server
GO_TEST_FLAGS ?= -count=1 -timeout 15m

.PHONY: all build run test lint proto proto-check tools fmt vet bench bench-history bench-profile clean demo postbackctl

all: build

## build: the six binaries in bin/ (postback-<service> for each of SERVICES), and the postbackctl CLI
build: $(addprefix bin/postback-,$(SERVICES)) bin/postbackctl

bin/postback-%: FORCE
	@[ -x $@ ] || echo "building $@ (the first build downloads the Go modules and compiles them: about two minutes on a fresh 2-core machine, seconds after) ..."
	go build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./services/$*/cmd/postback-$*

## postbackctl: the command line of the gRPC API (client/cmd/postbackctl), in bin/
postbackctl: bin/postbackctl

bin/postbackctl: FORCE
	@[ -x $@ ] || echo "building $@ (the first time after make run has built: about 15 s on 2 cores) ..."
	go build -trimpath -o $@ ./client/cmd/postbackctl

FORCE:

## run: standalone Postback (embedded NATS, in-process limiter) on 127.0.0.1:7070 (gRPC) and :7071 (HTTP)
run: bin/postback-standalone
	./bin/postback-standalone

## test: every test of every module (starts the NATS and Redis servers the tests need), plus lint.
## The standalone package goes last, alone: its end-to-end tests measure schedules and recovery in
## wall-clock time, and the client's and postbackctl's tests run standalones of their own.
test: lint
	./scripts/ensure-redis.sh
	./scripts/ensure-chromium.sh
	go test $(GO_TEST_FLAGS) $(filter-out %/services/standalone/...,$(MODULES))
	go test $(GO_TEST_FLAGS) $(filter %/services/standalone/...,$(MODULES))

## lint: gofmt, go vet, buf lint, and a check that the generated code is current
lint: fmt vet proto-check deploy-check

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$') 2>/dev/null || true); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	go vet $(MODULES)

## proto: regenerate the Go code from proto/ with buf and local plugins
proto: tools
	cd proto && PATH="$(CURDIR)/bin:$$PATH" buf lint && PATH="$(CURDIR)/bin:$$PATH" buf generate

## proto-check: buf lint, and fail when the committed generated code is stale
proto-check: tools
	./scripts/check-proto.sh

## tools: buf, protoc plugins and nats-server, built from scripts/tools (pinned in its go.mod)
tools: $(TOOLS)

$(TOOLS) &: scripts/tools/go.mod scripts/tools/go.sum
	@echo "building tools (buf, protoc-gen-go, protoc-gen-go-grpc, nats-server) into bin/: about two minutes the first time on 2 cores ..."
	cd scripts/tools && GOWORK=off go build -o ../../bin/ github.com/bufbuild/buf/cmd/buf \
		google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc \
		github.com/nats-io/nats-server/v2
	@touch $(TOOLS)

clean:
	rm -rf bin data

## demo: one postback end to end against a running `make run` (start it with POSTBACK_ALLOW_CIDRS=127.0.0.1/32)
demo:
	go run ./services/standalone/cmd/postback-demo

.PHONY: deploy-check run-cluster stop-cluster

## deploy-check: helm lint/template of charts/postback (default and production values) decoded strictly
## into the Kubernetes types, docker-compose.yml through compose-go, deploy/Dockerfile (read, and its build run here
## for every service), every service named in every deployment file (scripts/deploycheck)
deploy-check: bin/deploycheck
	./bin/deploycheck -root .
	cd deploy/healthcheck && GOWORK=off go vet . && GOWORK=off go test -count=1 -timeout 1m .
	cd scripts/deploycheck && GOWORK=off go vet .
	cd scripts/cluster-e2e && GOWORK=off go vet .

# Its own module (helm, k8s.io/api, compose-go stay out of go.work); rebuilt only when its sources change.
bin/deploycheck: $(wildcard scripts/deploycheck/*.go) scripts/deploycheck/go.mod scripts/deploycheck/go.sum
	@echo "building bin/deploycheck (helm, k8s.io/api, compose-go: about two minutes the first time on 2 cores) ..."
	cd scripts/deploycheck && GOWORK=off go build -o ../../bin/deploycheck .

## run-cluster: 3-node NATS JetStream cluster, Redis, gateway, renderer, retry, historian and two senders as local processes (state in .cluster/;
## history in POSTBACK_HISTORY_URL when set, else the embedded SQLite file in .cluster/history/)
run-cluster: build bin/nats-server
	./scripts/ensure-redis.sh
	./scripts/run-cluster.sh

## stop-cluster: stop exactly the processes run-cluster started
stop-cluster:
	./scripts/stop-cluster.sh

## bench: end-to-end benchmark in both shapes next to a raw net/http reference (~10 min; BENCH_REPEAT=5 repeats the bursts); appends to docs/benchmarks.md
bench: build tools
	./scripts/ensure-redis.sh
	go run ./services/standalone/cmd/postback-bench -bin bin -redis-server "$$(command -v redis-server || echo /usr/bin/redis-server)" -out bench-result.json -markdown docs/benchmarks.md

## bench-history: the delivery log against 0 / 250k / 500k / 1M retained deliveries, SQLite and PostgreSQL (~30 min); appends to docs/benchmarks.md
bench-history: build
	go run ./services/standalone/cmd/postback-bench-history -bin bin -out bench-history-result.json -markdown docs/benchmarks.md

## bench-profile: the bench with pprof CPU and allocation profiles of every process during the bursts, noisy-intake and slow-receiver, in bench-profiles/
## (figures not appended to docs/benchmarks.md: profiling costs CPU)
bench-profile: build tools
	./scripts/ensure-redis.sh
	go run ./services/standalone/cmd/postback-bench -bin bin -redis-server "$$(command -v redis-server || echo /usr/bin/redis-server)" -out bench-profiles/result.json -markdown "" -profile bench-profiles
