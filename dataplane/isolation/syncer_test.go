package isolation

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/knftables"
)

// recordingNFT records the transactions that reach its Fake and can fail the
// next one.
type recordingNFT struct {
	*knftables.Fake
	txs      []string
	failNext bool
}

func (r *recordingNFT) Run(ctx context.Context, tx *knftables.Transaction) error {
	if r.failNext {
		r.failNext = false
		return errors.New("injected failure")
	}
	r.txs = append(r.txs, tx.String())
	return r.Fake.Run(ctx, tx)
}

func newRecording() *recordingNFT {
	return &recordingNFT{Fake: knftables.NewFake(knftables.InetFamily, Table)}
}

// snapshots is a history that changes something of every kind at each step.
func snapshots() []Snapshot {
	rich := richSnapshot()

	grown := richSnapshot() // a new client's IP merges with others into new ranges
	grown.Pods = append(grown.Pods, testPod("acme", "default", "client-0", []string{"10.244.1.10"}, "app=client"))

	moved := richSnapshot() // an acme IP now belongs to beta
	for i := range moved.Pods {
		if moved.Pods[i].Tenant == "acme" && moved.Pods[i].Name == "client" {
			moved.Pods[i].Tenant = "beta"
			moved.Pods[i].Namespace = "ops"
		}
	}

	noBeta := Snapshot{Namespaces: rich.Namespaces}
	for _, p := range rich.Pods {
		if p.Tenant != "beta" {
			noBeta.Pods = append(noBeta.Pods, p)
		}
	}
	noBeta.Pods = append(noBeta.Pods, testPod("acme", "default", "client-2", []string{"10.244.1.99"}, "app=client"))
	for _, p := range rich.Policies {
		if p.Annotations["kplex.io/tenant"] == "acme" {
			noBeta.Policies = append(noBeta.Policies, p)
		}
	}
	noBeta.Policies[0] = noBeta.Policies[0].DeepCopy()
	noBeta.Policies[0].Spec.Ingress = noBeta.Policies[0].Spec.Ingress[1:]

	return []Snapshot{{}, rich, grown, moved, noBeta, rich, {}}
}

// TestSyncDiffEqualsFull walks a history of snapshots with one Syncer and
// checks that each incremental Sync leaves the table a fresh Sync writes.
func TestSyncDiffEqualsFull(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	nft := newRecording()
	s := New(nft)
	for i, snap := range snapshots() {
		if err := s.Sync(ctx, snap); err != nil {
			t.Fatalf("step %d: Sync: %v", i, err)
		}
		if last := nft.txs[len(nft.txs)-1]; i > 0 && strings.Contains(last, "delete table") {
			t.Errorf("step %d rewrote the table instead of diffing:\n%s", i, last)
		}
		if got, want := canonicalDump(nft.Fake), canonicalDump(syncFake(t, snap)); got != want {
			t.Errorf("step %d: incremental Sync left\n%s\nfull Sync writes\n%s", i, got, want)
		}
	}
}

func TestSyncUnchangedWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	nft := newRecording()
	s := New(nft)
	for range 3 {
		if err := s.Sync(ctx, richSnapshot()); err != nil {
			t.Fatalf("Sync: %v", err)
		}
	}
	if len(nft.txs) != 1 {
		t.Errorf("three Syncs of one snapshot ran %d transactions, want 1", len(nft.txs))
	}
}

func TestSyncAddingAPodAddsOnlyElements(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	nft := newRecording()
	s := New(nft)
	snap := richSnapshot()
	if err := s.Sync(ctx, snap); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	snap.Pods = append(snap.Pods, testPod("acme", "default", "batch", []string{"10.244.1.50"}, "app=batch"))
	if err := s.Sync(ctx, snap); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	want := []string{
		"add element inet kplex-isolation pods4 { 10.244.1.50 }",
		"add element inet kplex-isolation tenant-acme-pods4 { 10.244.1.50 }",
		"add element inet kplex-isolation tenants4 { 10.244.1.50 : jump tenant-acme }",
		// The client policy's egress may reach any acme pod.
		"add element inet kplex-isolation egress-acme-" + pid("default", "client") + "-0-peers4 { 10.244.1.50 }",
	}
	got := strings.Split(strings.TrimSpace(nft.txs[1]), "\n")
	for _, w := range want {
		if !strings.Contains(nft.txs[1], w) {
			t.Errorf("transaction lacks %q", w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("transaction has %d operations, want %d:\n%s", len(got), len(want), nft.txs[1])
	}
}

func TestSyncRecovers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	nft := newRecording()
	s := New(nft)
	snaps := snapshots()
	if err := s.Sync(ctx, snaps[1]); err != nil {
		t.Fatalf("Sync: %v", err)
	}

	nft.failNext = true
	if err := s.Sync(ctx, snaps[2]); err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("Sync with a failing nft = %v, want the failure wrapped", err)
	}
	if err := s.Sync(ctx, snaps[2]); err != nil {
		t.Fatalf("Sync after a failure: %v", err)
	}
	if last := nft.txs[len(nft.txs)-1]; !strings.Contains(last, "delete table") {
		t.Errorf("Sync after a failure did not rewrite the table:\n%s", last)
	}

	// Someone deletes the table behind the Syncer's back.
	tx := nft.NewTransaction()
	tx.Delete(&knftables.Table{})
	if err := nft.Fake.Run(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx, snaps[2]); err != nil {
		t.Fatalf("Sync after the table was deleted: %v", err)
	}
	if got, want := canonicalDump(nft.Fake), canonicalDump(syncFake(t, snaps[2])); got != want {
		t.Errorf("after the table was deleted, Sync left\n%s\nwant\n%s", got, want)
	}
}

func TestCleanup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	nft := newRecording()
	s := New(nft)
	if err := s.Cleanup(ctx); err != nil {
		t.Fatalf("Cleanup without a table: %v", err)
	}
	if err := s.Sync(ctx, richSnapshot()); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := s.Cleanup(ctx); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if nft.Table != nil {
		t.Errorf("table still there after Cleanup:\n%s", nft.Dump())
	}
	// The next Sync must write everything again, not a diff against the past.
	if err := s.Sync(ctx, Snapshot{Policies: []*networkingv1.NetworkPolicy{}}); err != nil {
		t.Fatalf("Sync after Cleanup: %v", err)
	}
	if nft.Table == nil || nft.Table.Chains[forwardChain] == nil {
		t.Errorf("Sync after Cleanup left no forward chain:\n%s", nft.Dump())
	}
}

// canonicalDump is the fake's dump with elements sorted: the fake keeps them
// in insertion order, which nft does not.
func canonicalDump(fake *knftables.Fake) string {
	var rest, elems []string
	for _, l := range strings.Split(fake.Dump(), "\n") {
		if strings.HasPrefix(l, "add element ") {
			elems = append(elems, l)
		} else {
			rest = append(rest, l)
		}
	}
	slices.Sort(elems)
	return strings.Join(append(rest, elems...), "\n")
}
