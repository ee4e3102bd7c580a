package tenancy

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestSchedulingLatencyStart(t *testing.T) {
	created := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	pod := func(uid string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), CreationTimestamp: metav1.NewTime(created)}}
	}
	a := &arrivals{seen: map[types.UID]time.Time{}}
	bound := created.Add(3 * time.Second)

	// Seen 300ms after its (whole-second) creation: the finer start.
	a.saw(pod("fresh"), created.Add(300*time.Millisecond))
	a.saw(pod("fresh"), created.Add(900*time.Millisecond)) // the first sighting counts
	if got := a.since(pod("fresh"), bound); got != 2700*time.Millisecond {
		t.Errorf("fresh pod: %v, want 2.7s", got)
	}
	// Seen long after creation (the scheduler started later): creation.
	a.saw(pod("old"), created.Add(2*time.Second))
	if got := a.since(pod("old"), bound); got != 3*time.Second {
		t.Errorf("pod older than the scheduler: %v, want 3s", got)
	}
	// Never seen unbound: creation.
	if got := a.since(pod("unseen"), bound); got != 3*time.Second {
		t.Errorf("unseen pod: %v, want 3s", got)
	}
	if len(a.seen) != 0 {
		t.Errorf("arrivals kept after binding: %v", a.seen)
	}
}
