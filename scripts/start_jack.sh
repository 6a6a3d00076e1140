#!/usr/bin/env bash
# Start a JACK server on the dummy driver: a real PortAudio device on a machine without a sound card.
# Usage: scripts/start_jack.sh [RATE_HZ] [PERIOD_FRAMES]   (defaults 48000 512)
# Prints the jackd PID; stop it with `kill PID`. Start it before live_server.py (PortAudio scans
# devices once), then run `python live_server.py --input system ...` and wire a source with
# `jack_connect SOURCE:PORT PortAudio:in_0` (e.g. `jack_simple_client` plays a 240 Hz sine).
# JACK_DEFAULT_SERVER picks a server name (so that several can run side by side).
set -euo pipefail
rate="${1:-48000}"
period="${2:-512}"
if ! command -v jackd >/dev/null; then
    echo "error: jackd not found (apt-get install -y --no-install-recommends jackd2 libportaudio2)" >&2
    exit 2
fi
export JACK_NO_START_SERVER=1
jackd --no-realtime -t 10000 -d dummy -r "$rate" -p "$period" -C 2 -P 2 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do
    if jack_lsp >/dev/null 2>&1; then
        echo "$pid"
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        break
    fi
    sleep 0.05
done
echo "error: jackd (dummy driver, ${rate} Hz, ${period} frames) did not start" >&2
kill "$pid" 2>/dev/null || true
exit 1
