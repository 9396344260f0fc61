#!/bin/sh
# The kiosk program of the example image: a full screen on tty1 showing the image's label,
# the gitroot revision that booted (and how it was chosen), and the update state, refreshed
# every 10 seconds (the update state whenever it changed). Stands in for the real application
# (a browser, a player) a kiosk runs.
# Run by kiosk.service.
label=$(cat /etc/kiosk-label 2>/dev/null || echo "gitroot kiosk")
status= seen=
while :; do
	# `gitroot status` starts node: only when the state or the last fetch changed.
	now=$(stat -c %Y.%s /run/gitroot/home/state.json /run/gitroot/home/last-fetch.json 2>/dev/null | paste -sd, -)
	if [ -d /run/gitroot/home ] && [ "$now" != "$seen" ]; then
		status=$(gitroot status --dir /run/gitroot/home 2>&1 | sed 's/^/    /' | head -n 12)
		seen=$now
	fi
	# What booted, from the record the initramfs wrote (absent when gitroot did not boot this).
	revision=unknown kind=
	if [ -r /run/gitroot/booted.json ]; then
		revision=$(sed -n 's/.*"revision": *"\([0-9a-f]*\)".*/\1/p' /run/gitroot/booted.json)
		kind=$(sed -n 's/.*"kind": *"\([a-z]*\)".*/\1/p' /run/gitroot/booted.json)
	fi
	# Clear the screen and home the cursor (ANSI), then draw.
	printf '\033[2J\033[H\n\n'
	printf '    %s\n\n' "$label"
	printf '    revision  %s %s\n' "${revision:-unknown}" "${kind:+($kind)}"
	printf '    host      %s\n' "$(cat /etc/hostname 2>/dev/null)"
	printf '    time      %s\n\n' "$(date '+%Y-%m-%d %H:%M')"
	# The update state, as gitroot reports it (booted, good, pending, last fetch).
	[ -z "$status" ] || printf '%s\n' "$status"
	sleep 10
done
