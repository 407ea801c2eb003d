#!/usr/bin/env bash
# Builds the release artifacts into dist/: the controller (linux amd64 and
# arm64, static), the agent (amd64, arm64, armhf; oto where this machine can
# build it with cgo, else aplay), their .deb packages and MANIFEST.txt.
# Options: -version 1.2.0, -out DIR, -only amd64[,arm64,armhf].
# The packager is a module of its own (tools/release), linked into neither
# binary.
set -euo pipefail
cd "$(dirname "$0")"
exec go -C tools/release run . -root "$PWD" "$@"
