package plugin

import (
	"fmt"
	"slices"
	"testing"
)

func TestPreferred(t *testing.T) {
	b := newFakeBackend()
	whole := newResource("nvidia.com/gpu", 1, b.devices, b.NVLinks)
	shared := newResource("nvidia.com/gpu", 4, b.devices, b.NVLinks)
	rep := func(g, n int) string { return fmt.Sprintf("%s::%d", uuid(g), n) }
	without := func(all []string, drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(all), func(id string) bool { return slices.Contains(drop, id) })
	}
	for _, tc := range []struct {
		name      string
		res       *resource
		available []string
		must      []string
		size      int
		want      []string
	}{
		{"most NVLinked pair", whole, whole.ids, nil, 2, []string{uuid(4), uuid(5)}},
		{"partner of a must", whole, whole.ids, []string{uuid(1)}, 2, []string{uuid(1), uuid(0)}},
		{"best pair left", whole, without(whole.ids, uuid(5)), nil, 2, []string{uuid(0), uuid(1)}},
		{"four, ties to lowest", whole, whole.ids, nil, 4, []string{uuid(0), uuid(1), uuid(4), uuid(5)}},
		{"must joins the best", whole, whole.ids, []string{uuid(6)}, 3, []string{uuid(6), uuid(4), uuid(5)}},
		{"all", whole, whole.ids, nil, 8, whole.ids},
		{"must only", whole, whole.ids, []string{uuid(3), uuid(2)}, 2, []string{uuid(3), uuid(2)}},
		{"replicas of one GPU", shared, shared.ids, nil, 3, []string{rep(0, 0), rep(0, 1), rep(0, 2)}},
		{"replicas of the must's GPU", shared, shared.ids, []string{rep(3, 2)}, 3, []string{rep(3, 2), rep(3, 0), rep(3, 1)}},
		{"least loaded GPU", shared, without(shared.ids, rep(0, 0), rep(1, 0), rep(1, 1)), nil, 2, []string{rep(2, 0), rep(2, 1)}},
		{"fewest GPUs, then NVLinked", shared, without(shared.ids, rep(0, 0), rep(0, 1)), []string{rep(0, 2)}, 6,
			[]string{rep(0, 2), rep(0, 3), rep(1, 0), rep(1, 1), rep(1, 2), rep(1, 3)}},
		{"spills onto the most free, then NVLinked", shared, []string{rep(3, 0), rep(4, 0), rep(5, 0), rep(5, 1)}, nil, 3,
			[]string{rep(5, 0), rep(5, 1), rep(4, 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.res.preferred(tc.available, tc.must, tc.size)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("preferred = %v\n         want %v", got, tc.want)
			}
		})
	}
	if _, err := whole.preferred([]string{"GPU-x"}, nil, 1); err == nil {
		t.Error("unknown available ID accepted")
	}
	if _, err := shared.preferred(shared.ids, []string{uuid(0)}, 1); err == nil {
		t.Error("unknown must-include ID accepted")
	}
}
