package fairness

import (
	"context"
	"testing"
	"time"
)

func TestInflightBoundsEachTenantAlone(t *testing.T) {
	t.Parallel()
	f := NewInflight(2, 1)
	ctx := context.Background()
	var held []func()
	for range 2 {
		release, ok := f.Acquire(ctx, "a")
		if !ok {
			t.Fatal("a was refused within its bound")
		}
		held = append(held, release)
	}
	// a's third request waits; b is not delayed by a's.
	third := make(chan bool)
	go func() {
		release, ok := f.Acquire(ctx, "a")
		if ok {
			release()
		}
		third <- ok
	}()
	select {
	case <-third:
		t.Fatal("a's third request ran beside its two")
	case <-time.After(50 * time.Millisecond):
	}
	releaseB, ok := f.Acquire(ctx, "b")
	if !ok {
		t.Fatal("b waited for a's bound")
	}
	releaseB()
	// With one waiting, a's fourth is refused at once.
	deadline, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, ok := f.Acquire(deadline, "a"); ok {
		t.Fatal("a's fourth request was accepted beyond its bound and queue")
	}
	held[0]()
	if !<-third {
		t.Fatal("a's waiting request was refused after a slot freed")
	}
	held[1]()
	if n := f.Tenants(); n != 0 {
		t.Errorf("%d tenants still tracked with nothing in flight", n)
	}
}

func TestInflightGivesUpWhenTheRequestEnds(t *testing.T) {
	t.Parallel()
	f := NewInflight(1, 10)
	release, _ := f.Acquire(context.Background(), "a")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, ok := f.Acquire(ctx, "a"); ok {
		t.Fatal("acquired a held slot")
	}
	release()
	if n := f.Tenants(); n != 0 {
		t.Errorf("%d tenants still tracked", n)
	}
}

func TestInflightZeroBoundsNothing(t *testing.T) {
	t.Parallel()
	f := NewInflight(0, 0)
	for range 100 {
		if _, ok := f.Acquire(context.Background(), "a"); !ok {
			t.Fatal("refused with no bound")
		}
	}
}
