package plugin

import (
	"context"
	"fmt"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// maxCombinations bounds the search for the best-linked set of whole GPUs:
// C(16,8) = 12870, so it is exhaustive on nodes of up to 16 GPUs; beyond,
// the best of the first combinations (in GPU order) wins.
const maxCombinations = 20000

// GetPreferredAllocation answers each container's request with preferred.
func (s *server) GetPreferredAllocation(_ context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	resp := &pluginapi.PreferredAllocationResponse{}
	for _, creq := range req.GetContainerRequests() {
		ids, err := s.res.preferred(creq.GetAvailableDeviceIDs(), creq.GetMustIncludeDeviceIDs(), int(creq.GetAllocationSize()))
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "preferred allocation for '%s': %v", s.res.name, err)
		}
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerPreferredAllocationResponse{DeviceIDs: ids})
	}
	return resp, nil
}

// preferred picks size device IDs out of available, must first. Replicas
// are packed onto as few GPUs as possible; whole GPUs are chosen to have
// as many NVLinks between them as possible. Ties go to the lowest GPU
// index and replica number, so the answer is deterministic.
func (r *resource) preferred(available, must []string, size int) ([]string, error) {
	chosen := make([]string, 0, size)
	taken := make(map[string]bool, len(available))
	var used []int // GPUs of chosen, in order
	for _, id := range must {
		rep, ok := r.byID[id]
		if !ok {
			return nil, fmt.Errorf("unknown device: %s", id)
		}
		if taken[id] {
			continue
		}
		taken[id] = true
		chosen = append(chosen, id)
		if !slices.Contains(used, rep.gpu) {
			used = append(used, rep.gpu)
		}
	}
	// free[g] are GPU g's available IDs not chosen yet, by replica number.
	free := make([][]string, len(r.gpus))
	for _, id := range available {
		rep, ok := r.byID[id]
		if !ok {
			return nil, fmt.Errorf("unknown device: %s", id)
		}
		if !taken[id] {
			taken[id] = true
			free[rep.gpu] = append(free[rep.gpu], id)
		}
	}
	for _, ids := range free {
		slices.SortFunc(ids, func(a, b string) int { return r.byID[a].n - r.byID[b].n })
	}
	need := size - len(chosen)
	if need <= 0 {
		return chosen, nil
	}
	if r.replicas > 1 {
		return append(chosen, r.pack(free, used, need)...), nil
	}
	for _, g := range r.bestLinked(free, used, need) {
		chosen = append(chosen, free[g][0])
	}
	return chosen, nil
}

// pack takes need replicas: first from the GPUs the request already has,
// then from the GPUs with the most free replicas (fewest GPUs for this
// request, and the least loaded ones across requests), preferring those
// NVLinked to the GPUs already taken.
func (r *resource) pack(free [][]string, used []int, need int) []string {
	var out []string
	take := func(g int) {
		n := min(need, len(free[g]))
		out = append(out, free[g][:n]...)
		free[g] = free[g][n:]
		need -= n
	}
	for _, g := range used {
		take(g)
	}
	for need > 0 {
		best := -1
		for g, ids := range free {
			if len(ids) == 0 || slices.Contains(used, g) {
				continue
			}
			if best < 0 || len(ids) > len(free[best]) ||
				len(ids) == len(free[best]) && r.linksTo(g, used) > r.linksTo(best, used) {
				best = g
			}
		}
		if best < 0 {
			break // fewer available than asked for
		}
		take(best)
		used = append(used, best)
	}
	return out
}

// bestLinked chooses need GPUs with a free ID which, with used, have the
// most NVLinks between them.
func (r *resource) bestLinked(free [][]string, used []int, need int) []int {
	var cands []int
	for g, ids := range free {
		if len(ids) > 0 && !slices.Contains(used, g) {
			cands = append(cands, g)
		}
	}
	if len(cands) <= need {
		return cands
	}
	set := slices.Clone(used)
	var best []int
	bestScore, budget := -1, maxCombinations
	var choose func(start, left int)
	choose = func(start, left int) {
		if budget == 0 {
			return
		}
		if left == 0 {
			budget--
			if s := r.linkScore(set); s > bestScore {
				bestScore, best = s, slices.Clone(set[len(used):])
			}
			return
		}
		for i := start; i <= len(cands)-left; i++ {
			set = append(set, cands[i])
			choose(i+1, left-1)
			set = set[:len(set)-1]
		}
	}
	choose(0, need)
	return best
}

// linkScore is the number of NVLinks between all pairs of gpus.
func (r *resource) linkScore(gpus []int) int {
	s := 0
	for i, a := range gpus {
		for _, b := range gpus[i+1:] {
			s += r.links[a][b]
		}
	}
	return s
}

// linksTo is the number of NVLinks between g and gpus.
func (r *resource) linksTo(g int, gpus []int) int {
	s := 0
	for _, o := range gpus {
		s += r.links[g][o]
	}
	return s
}
