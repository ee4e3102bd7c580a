#!/bin/sh
# kplex-runsc: gVisor's runsc as runc's shim expects a runtime to behave,
# for containerd's CRI plugin (runtime_type io.containerd.runc.v2,
# options.BinaryName pointing here). Debian's runsc ships no
# containerd-shim-runsc-v1. Why each step: nodeagent/gvisor/doc.go.
RUNSC=/usr/bin/runsc
RUNSC_FLAGS=
eval "set -- --network=host $RUNSC_FLAGS \"\$@\""
prev=
for a; do
  if [ "$a" = kill ]; then
    out=$("$RUNSC" "$@" 2>&1) && exit 0
    case $out in
    *"is not running"*|*"in state stopped"*|*"in state created"*) echo "container not running" >&2 ;;
    *) printf '%s\n' "$out" >&2 ;;
    esac
    exit 1
  fi
  if [ "$prev" = --bundle ] && grep -q '"io.kubernetes.cri.container-type":"container"' "$a/config.json"; then
    h=$(sed -n 's#.*"destination":"/etc/hostname","type":"bind","source":"\([^"]*\)".*#\1#p' "$a/config.json")
    [ -f "$h" ] && h=$(tr -cd 'a-zA-Z0-9.-' <"$h") && sed -i \
      "s/^{\"ociVersion\":\"\([^\"]*\)\",/{\"ociVersion\":\"\1\",\"hostname\":\"$h\",/" "$a/config.json"
    sed -i 's/"io.kubernetes.cri.container-type":"container"/"io.kubernetes.cri.container-type":"sandbox"/' "$a/config.json"
  fi
  prev=$a
done
exec "$RUNSC" "$@"
