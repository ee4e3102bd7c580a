package isolation

import (
	"context"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"
)

// countingNFT counts the transactions that reach nft and keeps the last.
type countingNFT struct {
	knftables.Interface
	runs int
	last string
}

func (c *countingNFT) Run(ctx context.Context, tx *knftables.Transaction) error {
	c.runs++
	c.last = tx.String()
	return c.Interface.Run(ctx, tx)
}

func listTable(t *testing.T, ns string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "inet", Table).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list table: %v: %s", err, out)
	}
	return string(out)
}

// TestIntegrationRulesetLoads feeds everything compile can produce to the
// real nft, then checks that an incremental Sync leaves the kernel with the
// same table a fresh one writes.
func TestIntegrationRulesetLoads(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	node := newNetns(t, "node")
	nft := &countingNFT{Interface: newNetnsNFT(t, node)}
	s := New(nft)

	snap := richSnapshot()
	if err := s.Sync(ctx, snap); err != nil {
		t.Fatalf("first Sync: %v", err)
	}
	listing := listTable(t, node)
	t.Logf("nft list table inet %s:\n%s", Table, listing)
	for _, want := range []string{
		"ip saddr vmap @tenants4",
		"10.244.1.11 : jump tenant-acme",
		"10.244.2.9 : drop",
		"10.244.2.10 : drop",
		"tcp . 9000-9100",
		"10.244.1.11 . tcp . 8080",
		"192.168.0.0/24",
		"2001:db8::/48",
	} {
		if !strings.Contains(listing, want) {
			t.Errorf("table lacks %q", want)
		}
	}

	if err := s.Sync(ctx, snap); err != nil {
		t.Fatalf("unchanged Sync: %v", err)
	}
	if nft.runs != 1 {
		t.Errorf("an unchanged Sync ran nft: %d transactions, want 1", nft.runs)
	}

	// Walk a history that changes something of every kind at each step; after
	// each incremental Sync the kernel must hold what a full Sync writes.
	fresh := New(newNetnsNFT(t, newNetns(t, "fresh")))
	for i, snap := range snapshots() {
		if err := s.Sync(ctx, snap); err != nil {
			t.Fatalf("step %d: incremental Sync: %v", i, err)
		}
		if i > 0 && strings.Contains(nft.last, "delete table") {
			t.Errorf("step %d rewrote the table instead of diffing", i)
		}
		if err := fresh.Cleanup(ctx); err != nil {
			t.Fatalf("step %d: Cleanup: %v", i, err)
		}
		if err := fresh.Sync(ctx, snap); err != nil {
			t.Fatalf("step %d: full Sync: %v", i, err)
		}
		got, want := sortedListing(listTable(t, node)), sortedListing(listTable(t, fresh.nft.(*netnsNFT).ns))
		if got != want {
			t.Errorf("step %d: incremental Sync left\n%s\nfull Sync writes\n%s", i, got, want)
		}
	}

	if err := s.Cleanup(ctx); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if out, err := exec.Command("ip", "netns", "exec", node, "nft", "list", "table", "inet", Table).CombinedOutput(); err == nil {
		t.Fatalf("table still there after Cleanup:\n%s", out)
	}
	if err := s.Cleanup(ctx); err != nil {
		t.Fatalf("second Cleanup: %v", err)
	}
	if err := s.Sync(ctx, snap); err != nil {
		t.Fatalf("Sync after Cleanup: %v", err)
	}
	if got := listTable(t, node); sortedListing(got) != sortedListing(listing) {
		t.Errorf("after Cleanup, Sync wrote\n%s\nwant\n%s", got, listing)
	}

	// Someone deletes the table: the next Sync notices and rewrites it.
	run(t, "ip", "netns", "exec", node, "nft", "delete", "table", "inet", Table)
	if err := s.Sync(ctx, snap); err != nil {
		t.Fatalf("Sync after the table was deleted: %v", err)
	}
	if got := listTable(t, node); sortedListing(got) != sortedListing(listing) {
		t.Errorf("after the table was deleted, Sync wrote\n%s\nwant\n%s", got, listing)
	}
}

var elementsRegexp = regexp.MustCompile(`elements = \{([^}]*)\}`)

// sortedListing puts an nft listing in a canonical order: nft lists objects
// in creation order and elements in an order that depends on the set's
// history, neither of which says anything about the table's content.
func sortedListing(listing string) string {
	listing = elementsRegexp.ReplaceAllStringFunc(listing, func(m string) string {
		body := elementsRegexp.FindStringSubmatch(m)[1]
		var items []string
		for _, it := range strings.Split(body, ",") {
			items = append(items, strings.TrimSpace(it))
		}
		slices.Sort(items)
		return "elements = { " + strings.Join(items, ", ") + " }"
	})
	var head, blocks []string
	var block []string
	for _, l := range strings.Split(listing, "\n") {
		switch {
		case strings.HasPrefix(l, "\tset ") || strings.HasPrefix(l, "\tmap ") || strings.HasPrefix(l, "\tchain "):
			block = []string{l}
		case block != nil:
			block = append(block, l)
			if l == "\t}" {
				blocks = append(blocks, strings.Join(block, "\n"))
				block = nil
			}
		case strings.TrimSpace(l) != "":
			head = append(head, l)
		}
	}
	slices.Sort(blocks)
	return strings.Join(append(head, blocks...), "\n")
}
