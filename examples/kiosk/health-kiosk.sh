#!/bin/sh
# /etc/gitroot/health.d/20-kiosk: gitroot mark-good runs this after every complete boot
# (docs/rollback.md). A release whose kiosk program does not run is not marked good: it uses
# up its tries and the known-good release boots again. kiosk.service restarts its program
# (Restart=always), so a program that crashes shows as a restart count or a service that is
# not active at this moment.
state=$(systemctl show -P ActiveState kiosk.service)
restarts=$(systemctl show -P NRestarts kiosk.service)
if [ "$state" != active ] || [ "$restarts" != 0 ]; then
	echo "kiosk.service is $state after $restarts restarts: the kiosk program does not run"
	exit 1
fi
