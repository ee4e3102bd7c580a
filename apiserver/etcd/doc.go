// Package etcd runs the embedded etcd that kplex uses when no
// --etcd-servers are given, so that `kplex up` needs nothing else.
package etcd
