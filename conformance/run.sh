#!/usr/bin/env bash
# run.sh: `make conformance`. Runs upstream's conformance suite (e2e.test of
# k8s.io/kubernetes at the version kplex serves) against a kplex tenant on
# this machine and writes a report by SIG.
#
#   FOCUS    ginkgo focus (default '\[Conformance\]')
#   SKIP     ginkgo skip (default '\[Serial\]|\[Disruptive\]')
#   TIMEOUT  the suite's timeout; ginkgo names the specs it interrupts (default 2h)
#   PROCS    parallel ginkgo processes (default 2, for 2 cores)
#   NODES    containerd nodes (default 2)
#   REPORT_DIR  where the report goes (default _output/conformance/<time>)
#   KEEP=1   keep the work dir (containerd state, kplex data) for debugging
#
# Needs root, kplex's binaries (`make build`) and Debian's containerd, runc,
# containernetworking-plugins, busybox-static, nftables, iproute2 and
# util-linux; it stops at once, naming what is missing, without them.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/bin}
OUT=$BIN/conformance
FOCUS=${FOCUS:-'\[Conformance\]'}
SKIP=${SKIP:-'\[Serial\]|\[Disruptive\]'}
TIMEOUT=${TIMEOUT:-2h}
PROCS=${PROCS:-2}
NODES=${NODES:-2}
REPORT_DIR=${REPORT_DIR:-$ROOT/_output/conformance/$(date +%Y%m%d-%H%M%S)}

# What this machine lacks, with the package that brings it, before any
# build: a missing containerd should not cost a 15-minute compile first.
missing=() packages=()
need() { # need <what> <package> <test...>
	local what=$1 pkg=$2
	shift 2
	if ! "$@" >/dev/null 2>&1; then
		missing+=("$what") packages+=("$pkg")
	fi
}
for cmd in containerd containerd-shim-runc-v2 ctr; do need "$cmd" containerd command -v "$cmd"; done
need runc runc command -v runc
for p in bridge host-local portmap loopback; do need "/usr/lib/cni/$p" containernetworking-plugins test -x "/usr/lib/cni/$p"; done
# A dynamically linked busybox (Debian's busybox package) cannot run in an image.
need "static /bin/busybox" busybox-static bash -c 'test -x /bin/busybox && ! LC_ALL=C readelf -l /bin/busybox 2>/dev/null | grep -q "program interpreter"'
need nft nftables command -v nft
need ip iproute2 command -v ip
need nsenter util-linux command -v nsenter
if ((${#missing[@]})); then
	echo "conformance: missing ${missing[*]}" >&2
	echo "  install with: apt-get install -y $(printf '%s\n' "${packages[@]}" | sort -u | tr '\n' ' ')" >&2
	exit 1
fi
if [[ $EUID -ne 0 ]]; then
	echo "conformance: needs root (containerd, network namespaces)" >&2
	exit 1
fi
if ! command -v kubectl >/dev/null; then
	echo "conformance: warning: no kubectl on PATH; the suite's [sig-cli] specs will fail (.ci/run builds one)" >&2
fi
for b in kplex kplex-nodeagent; do
	[[ -x $BIN/$b ]] || { echo "conformance: $BIN/$b missing: run make build" >&2; exit 1; }
done

# timed <what> <command...>: runs a step and says how long it took.
timed() {
	local what=$1 start=$SECONDS
	shift
	echo "conformance: $what ..." >&2
	"$@"
	echo "conformance: $what: $((SECONDS - start))s" >&2
}

mkdir -p "$OUT" "$REPORT_DIR"
cd "$ROOT/conformance"
# The images' programs run in containers without a libc: static.
image_programs() {
	local pkg
	for pkg in k8s.io/kubernetes/test/images/agnhost k8s.io/kubernetes/test/images/nonewprivs github.com/kplex/kplex/test/images/pause; do
		CGO_ENABLED=0 go build -o "$OUT/$(basename "$pkg")" "$pkg"
	done
}
timed "go test -c k8s.io/kubernetes/test/e2e (first build: 10-20 min on 2 cores)" \
	go test -c -o "$OUT/e2e.test" k8s.io/kubernetes/test/e2e
timed "go build agnhost, nonewprivs, pause" image_programs
GINKGO=
if ((PROCS > 1)); then
	if go build -o "$OUT/ginkgo" github.com/onsi/ginkgo/v2/ginkgo; then
		GINKGO=$OUT/ginkgo
	else
		echo "conformance: cannot build the ginkgo CLI; running serially" >&2
		PROCS=1
	fi
fi
go build -o "$OUT/kplex-conformance" ./cmd/kplex-conformance
go build -o "$OUT/report" ./report

status=0
"$OUT/kplex-conformance" --bin-dir="$BIN" --e2e="$OUT/e2e.test" --ginkgo="$GINKGO" --procs="$PROCS" \
	--agnhost="$OUT/agnhost" --nonewprivs="$OUT/nonewprivs" --pause="$OUT/pause" \
	--kube-src="$(go list -m -f '{{.Dir}}' k8s.io/kubernetes)" \
	--report-dir="$REPORT_DIR" --focus="$FOCUS" --skip="$SKIP" --timeout="$TIMEOUT" \
	--nodes="$NODES" ${KEEP:+--keep} || status=$?

if [[ -f $REPORT_DIR/junit_01.xml ]]; then
	echo
	"$OUT/report" --junit="$REPORT_DIR/junit_01.xml" --out="$REPORT_DIR"
	echo "conformance: report in $REPORT_DIR (summary.txt, results.tsv, junit_01.xml, e2e.log, logs/)" >&2
fi
exit $status
