package lifecycle

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
)

func tenantObject(name, uid string, deleting bool) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetName(name)
	u.SetUID(types.UID("uid-" + uid))
	if deleting {
		now := metav1.Now()
		u.SetDeletionTimestamp(&now)
	}
	return u
}

// TestDeletionWaitsForWritesInFlight: a write admitted while the tenant was
// served holds its deletion's purge back until it is answered; writes after
// the tenant stopped being served are refused.
func TestDeletionWaitsForWritesInFlight(t *testing.T) {
	r := NewRegistry()
	r.observe(tenantObject("acme", "1", false))
	done, ok := r.BeginWrite("acme")
	if !ok {
		t.Fatal("a write to a served tenant was refused")
	}
	r.observe(tenantObject("acme", "1", true))
	if _, ok := r.BeginWrite("acme"); ok {
		t.Fatal("a write to a tenant being deleted was admitted")
	}
	drained := make(chan struct{})
	go func() {
		r.drained(context.Background(), "acme", time.Minute)
		close(drained)
	}()
	select {
	case <-drained:
		t.Fatal("deletion went on under a write in flight")
	case <-time.After(100 * time.Millisecond):
	}
	done()
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		t.Fatal("deletion still waits after the write was answered")
	}
	if len(r.leaving) != 0 {
		t.Errorf("drained tenants are remembered: %v", r.leaving)
	}
}

func TestDrainGivesUpAtItsLimit(t *testing.T) {
	r := NewRegistry()
	r.observe(tenantObject("stuck", "1", false))
	if _, ok := r.BeginWrite("stuck"); !ok {
		t.Fatal("a write to a served tenant was refused")
	}
	r.forget("stuck")
	began := time.Now()
	r.drained(context.Background(), "stuck", 50*time.Millisecond)
	if waited := time.Since(began); waited > 5*time.Second {
		t.Errorf("drain waited %s past its 50ms limit", waited)
	}
}
