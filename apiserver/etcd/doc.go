// Package etcd runs the embedded etcd that kplex uses when no
// --etcd-servers are given, so that `kplex up` needs nothing else. It
// serves on loopback over mutual TLS only, under a CA of its own (see
// pki.EnsureEtcd): loopback is open to every process of the host, and etcd
// holds every tenant's Secrets.
package etcd
