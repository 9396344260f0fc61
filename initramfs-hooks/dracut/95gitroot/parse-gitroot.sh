#!/bin/sh
# dracut cmdline hook: root=gitroot is ours. Accept it (rootok=1) and make the initqueue wait
# for the medium named by gitroot.medium= (LABEL=, UUID=, PARTLABEL=, PARTUUID=, /dev/...).
[ "$root" = gitroot ] || return 0
rootok=1
gitroot_medium=$(getarg gitroot.medium=)
[ -n "$gitroot_medium" ] || die "gitroot: no boot medium: add gitroot.medium=LABEL=... to the kernel command line"
wait_for_dev "$(label_uuid_to_dev "$gitroot_medium")"
