// Package gvisor ships kplex-runsc, the wrapper through which containerd's
// CRI plugin runs pods under gVisor on hosts whose runsc has no containerd
// shim of its own (Debian 12's): containerd's runc shim runs the wrapper as
// its runtime binary (BinaryName), and the wrapper adapts runsc to it.
//
// What the wrapper does, each for a failure seen without it (runsc
// 20221219, containerd 1.6, kernel 6.18):
//
//   - --network=host: that runsc refuses its own network stack on kernels
//     from 6.8 ("cannot run with network enabled in root network
//     namespace": it takes /proc/sys/net/core/rmem_default, now in every
//     network namespace, for a sign of the root one). With host, the
//     sandbox uses the pod's network namespace through host sockets:
//     syscalls still meet gVisor's kernel, not the host's.
//   - One sandbox per container: runsc runs a pod's later containers
//     (annotated io.kubernetes.cri.container-type=container) inside the
//     pause container's sandbox, where their pid is the sandbox's and their
//     stdio is that of `runsc start`, which runc's shim reads to its end:
//     their start hangs, their exits and logs are lost. Marked as sandboxes
//     they get one each, in the pod's network namespace, with the pod's
//     hostname (which CRI sets in the pause container's spec only). They
//     do not share PID or IPC namespaces.
//   - kill: runc's shim takes "container not running" for a process
//     already gone; runsc's own words fail the kill, and with it CRI's
//     handling of the container's exit.
//
// Measured against runc in the same run (make bench-sandbox, 10 pods
// each): pod start 2.4×, a CPU loop 0.96×, 80 MB written in 64 KiB blocks
// with fsync 1.9× (in 4 KiB blocks about 10×: each write is a trip into
// gVisor), 2,000 small files 2.3×; each container costs a sentry and a
// gofer, about 45 MB.
package gvisor
