package isolation

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"k8s.io/klog/v2"
	"sigs.k8s.io/knftables"
)

// Syncer keeps the nftables table Table equal to what a Snapshot asks for.
// It is safe for concurrent use; Syncs are serialized.
type Syncer struct {
	nft knftables.Interface

	mu sync.Mutex
	// applied is what the last successful Run wrote, nil when unknown (before
	// the first Sync, after a failure or a Cleanup): the next Sync then
	// rewrites the whole table.
	applied *ruleset
}

// NewInterface returns the knftables.Interface New expects: the inet table
// Table, driven through the nft binary of this network namespace.
func NewInterface() (knftables.Interface, error) {
	nft, err := knftables.New(knftables.InetFamily, Table)
	if err != nil {
		return nil, fmt.Errorf("opening nftables table inet %s: %w", Table, err)
	}
	return nft, nil
}

// New returns a Syncer writing through nft, which must be bound to the inet
// family and table Table (NewInterface, or knftables.NewFake in tests).
func New(nft knftables.Interface) *Syncer {
	return &Syncer{nft: nft}
}

// Sync makes the table enforce snap: it is a full statement of the desired
// state, not a delta. It writes in one nft transaction, so packets see either
// the old rules or the new ones; it writes only what changed since its last
// successful Sync, and nothing at all when nothing changed. If the table no
// longer holds the objects it last wrote (someone flushed it), it rewrites
// the table whole.
func (s *Syncer) Sync(ctx context.Context, snap Snapshot) error {
	logger := klog.FromContext(ctx)
	want := compile(logger, snap)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.applied != nil && !s.intact(ctx) {
		logger.Info("The isolation table changed behind kplex's back; rewriting it", "table", Table)
		s.applied = nil
	}
	tx := s.nft.NewTransaction()
	full := s.applied == nil || !writeDiff(tx, s.applied, want)
	if full {
		tx = s.nft.NewTransaction()
		writeFull(tx, want)
	}
	if tx.NumOperations() == 0 {
		logger.V(4).Info("Isolation rules up to date", "table", Table)
		return nil
	}
	if err := s.nft.Run(ctx, tx); err != nil {
		s.applied = nil
		return fmt.Errorf("writing nftables table inet %s: %w", Table, err)
	}
	s.applied = want
	logger.V(2).Info("Wrote isolation rules", "table", Table, "full", full, "operations", tx.NumOperations(),
		"chains", len(want.chains), "sets", len(want.sets))
	return nil
}

// intact reports whether the table still has exactly the chains, sets and
// maps the last Sync wrote. It does not compare rule bodies: knftables cannot
// read them back.
func (s *Syncer) intact(ctx context.Context) bool {
	have, err := s.nft.ListAll(ctx)
	if err != nil {
		return false
	}
	for kind, names := range s.applied.names() {
		got := slices.Sorted(slices.Values(have[kind]))
		if !slices.Equal(got, names) {
			return false
		}
	}
	return len(have["chain"])+len(have["set"])+len(have["map"]) ==
		len(s.applied.chains)+len(s.applied.sets)
}

// Cleanup deletes the table. It succeeds when there is no table to delete.
func (s *Syncer) Cleanup(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applied = nil
	tx := s.nft.NewTransaction()
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	if err := s.nft.Run(ctx, tx); err != nil {
		return fmt.Errorf("deleting nftables table inet %s: %w", Table, err)
	}
	klog.FromContext(ctx).V(2).Info("Deleted isolation rules", "table", Table)
	return nil
}
