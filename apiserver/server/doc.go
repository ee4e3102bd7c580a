// Package server embeds the kplex apiserver: upstream kube-apiserver built
// from k8s.io/kubernetes, with its storage partitioned by tenant, requests
// routed by /clusters/<tenant>, identities confined to their tenant, and the
// tenant lifecycle running beside it. cmd/kplex-apiserver and `kplex up`
// embed the same code.
//
// The lifecycle follows etcd's embed package:
//
//	cfg := server.NewConfig()
//	cfg.DataDir = dir
//	s, err := server.Start(ctx, cfg)
//	if err != nil { ... }
//	defer s.Close()
//	select {
//	case <-s.Ready():
//	case err := <-s.Err():
//	}
package server
