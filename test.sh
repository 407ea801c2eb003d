#!/usr/bin/env bash
# The one test command: installs what the tests need from Debian's packages
# (ALSA headers for oto, aplay, mosquitto with its dynamic-security plugin and clients, espeak-ng, chromium for the
# console's browser test, with a Chinese font for its screenshots), then vets and
# runs every test. Suites against external engines run when their variable
# is set (.ci/run sets them): CUNXIANG_TEST_MOSQUITTO=tcp://127.0.0.1:1883,
# CUNXIANG_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
set -euo pipefail
cd "$(dirname "$0")"

need=()
for p in libasound2-dev alsa-utils mosquitto mosquitto-clients espeak-ng sox chromium fonts-wqy-microhei; do
	dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
	SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	echo "test.sh: installing ${need[*]}"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

go vet ./...
go vet -tags bench ./controller                 # the benchmark command (linked only with -tags bench)
go vet -tags crashtest ./controller             # the crash hook of the outbox crash tests (linked only with -tags crashtest)
go -C tools/release vet ./...                   # the release builder, a module of its own
CGO_ENABLED=0 go build -o /dev/null ./agent   # the no-cgo fallback must keep building
CGO_ENABLED=0 PKG_CONFIG=false go build -o /dev/null ./controller   # the service builds with no C toolchain or ALSA
go test -count=1 -timeout 15m -parallel 4 "$@" ./...   # end-to-end tests wait on the clock: run four at once
if [ -n "${CUNXIANG_TEST_POSTGRES:-}" ]; then
	echo "test.sh: the store's contract tests again, on PostgreSQL"
	CUNXIANG_TEST_STORE=postgres go test -count=1 "$@" ./controller/internal/store/
fi
