#!/bin/sh
# The agent runs on its own Node runtime, never the image's `node`: see
# packaging/deb/build for why. exec keeps the Node process as the unit's main
# PID (systemd's watchdog and notify attribution depend on it).
exec /usr/lib/dsvm-agent/node /usr/lib/dsvm-agent/dist/cli.mjs "$@"
