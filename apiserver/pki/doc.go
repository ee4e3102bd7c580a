// Package pki creates, once, the keys and certificates a kplex apiserver
// needs in its data directory: a CA, a serving certificate signed by it, an
// admin client certificate (system:masters), the service-account signing key
// and the key tenant credentials are derived from; and, for the embedded
// etcd (EnsureEtcd), a CA of its own with the member's certificates and the
// apiserver's client certificate toward it. Files that exist are
// reused, so restarts keep every credential valid; only a serving
// certificate that does not name every address the server is reached by
// (or, for etcd, that its CA did not sign) is signed again, with the same
// CA and key.
package pki
