package devices

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// Allocate gives the container (podUID, containerName) the devices for every
// extended resource in requests and returns what the container needs to use
// them. Non-extended names (cpu, memory, ephemeral-storage, pods,
// hugepages-*, kubernetes.io/...) and zero quantities are ignored.
//
// Allocate is idempotent: devices already assigned to this container (before
// a container restart, an agent restart or a plugin restart) are reused with
// the plugin's cached Allocate response; the plugin is not asked again
// (PreStartContainer is called again if the plugin requires it and is
// connected). Otherwise it picks healthy devices that no other container
// holds (asking the plugin's GetPreferredAllocation when offered), calls the
// plugin's Allocate and, if required, PreStartContainer, and records the
// assignment in the checkpoint. On error nothing new is assigned. Errors wrap
// ErrNotEnoughDevices or ErrResourceNotServed where applicable.
func (m *Manager) Allocate(ctx context.Context, podUID, containerName string, requests v1.ResourceList) (*Allocation, error) {
	if podUID == "" || containerName == "" {
		return nil, fmt.Errorf("allocating devices: pod UID %q and container name %q must not be empty", podUID, containerName)
	}
	logger := klog.FromContext(ctx).WithName("devices").WithValues("podUID", podUID, "container", containerName)

	type want struct {
		name string
		n    int
	}
	var wants []want
	for name, q := range requests {
		if !isExtendedResourceName(string(name)) || q.Sign() <= 0 {
			continue
		}
		wants = append(wants, want{string(name), int(q.Value())})
	}
	sort.Slice(wants, func(i, j int) bool { return wants[i].name < wants[j].name })

	alloc := &Allocation{Envs: map[string]string{}, Annotations: map[string]string{}, DeviceIDs: map[string][]string{}}
	if len(wants) == 0 {
		return alloc, nil
	}

	m.allocMu.Lock()
	defer m.allocMu.Unlock()

	key := containerKey{podUID, containerName}
	var added []string
	for _, w := range wants {
		a, isNew, err := m.allocateResource(ctx, logger.WithValues("resource", w.name), key, w.name, w.n)
		if err != nil {
			m.dropAssignments(key, added)
			return nil, fmt.Errorf("allocating %d %s for pod %s container %s: %w", w.n, w.name, podUID, containerName, err)
		}
		if isNew {
			added = append(added, w.name)
		}
		alloc.DeviceIDs[w.name] = append([]string(nil), a.ids...)
		mergeResponse(alloc, a.resp, logger)
	}
	if len(added) > 0 {
		if err := m.writeCheckpoint(); err != nil {
			m.dropAssignments(key, added)
			return nil, fmt.Errorf("allocating devices for pod %s container %s: %w", podUID, containerName, err)
		}
		logger.Info("Allocated devices", "devices", alloc.DeviceIDs)
	}
	return alloc, nil
}

// allocateResource returns the container's assignment for one resource,
// creating it (and storing it in memory only) if needed. Called with allocMu.
func (m *Manager) allocateResource(ctx context.Context, logger klog.Logger, key containerKey, name string, n int) (*assignment, bool, error) {
	m.mu.Lock()
	if a := m.assignments[key][name]; a != nil {
		ep := m.endpointLocked(name)
		m.mu.Unlock()
		if len(a.ids) != n {
			return nil, false, fmt.Errorf("container already holds %d devices %v, request changed to %d", len(a.ids), a.ids, n)
		}
		logger.V(3).Info("Reusing devices already assigned to the container", "devices", a.ids)
		if ep == nil {
			logger.V(2).Info("Device plugin not connected; reusing cached allocation without PreStartContainer")
		} else if err := preStart(ctx, ep, a.ids); err != nil {
			return nil, false, err
		}
		return a, false, nil
	}

	r := m.resources[name]
	if r == nil {
		m.mu.Unlock()
		return nil, false, fmt.Errorf("%w: no device plugin has registered resource %s", ErrResourceNotServed, name)
	}
	if r.ep == nil {
		m.mu.Unlock()
		return nil, false, fmt.Errorf("%w: the device plugin for %s is not connected", ErrResourceNotServed, name)
	}
	ep := r.ep
	healthy, free := m.freeLocked(name, r)
	m.mu.Unlock()

	if len(free) < n {
		return nil, false, fmt.Errorf("%w for resource %s: requested %d, free %d (healthy %d, %d held by other containers)",
			ErrNotEnoughDevices, name, n, len(free), healthy, healthy-len(free))
	}

	chosen := free[:n]
	if ep.opts.GetGetPreferredAllocationAvailable() {
		pref, err := preferredAllocation(ctx, ep, free, n)
		if err != nil {
			return nil, false, err
		}
		chosen = pref
	}

	actx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := ep.client.Allocate(actx, &pluginapi.AllocateRequest{
		ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: chosen}},
	})
	if err != nil {
		return nil, false, fmt.Errorf("device plugin Allocate(%v): %w", chosen, err)
	}
	if got := len(resp.GetContainerResponses()); got != 1 {
		return nil, false, fmt.Errorf("device plugin Allocate(%v) returned %d container responses, want 1", chosen, got)
	}
	if err := preStart(ctx, ep, chosen); err != nil {
		return nil, false, err
	}

	a := &assignment{ids: chosen, resp: cloneResp(resp.GetContainerResponses()[0])}
	m.mu.Lock()
	if m.assignments[key] == nil {
		m.assignments[key] = map[string]*assignment{}
	}
	m.assignments[key][name] = a
	m.mu.Unlock()
	return a, true, nil
}

// freeLocked returns the number of healthy devices of a resource and the
// sorted healthy devices no container holds. Call with mu held.
func (m *Manager) freeLocked(name string, r *resourceState) (int, []string) {
	held := map[string]bool{}
	for _, byRes := range m.assignments {
		if a := byRes[name]; a != nil {
			for _, id := range a.ids {
				held[id] = true
			}
		}
	}
	healthy := 0
	var free []string
	for id, h := range r.devices {
		if !h {
			continue
		}
		healthy++
		if !held[id] {
			free = append(free, id)
		}
	}
	sort.Strings(free)
	return healthy, free
}

// preferredAllocation asks the plugin which n of the free devices it
// prefers. IDs it returns that are not free are ignored and the rest is
// filled from free, as the kubelet does.
func preferredAllocation(ctx context.Context, ep *endpoint, free []string, n int) ([]string, error) {
	pctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := ep.client.GetPreferredAllocation(pctx, &pluginapi.PreferredAllocationRequest{
		ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
			AvailableDeviceIDs: free,
			AllocationSize:     int32(n),
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("device plugin GetPreferredAllocation: %w", err)
	}
	isFree := map[string]bool{}
	for _, id := range free {
		isFree[id] = true
	}
	var chosen []string
	take := func(id string) {
		if len(chosen) < n && isFree[id] {
			chosen = append(chosen, id)
			isFree[id] = false
		}
	}
	if crs := resp.GetContainerResponses(); len(crs) > 0 {
		for _, id := range crs[0].GetDeviceIDs() {
			take(id)
		}
	}
	for _, id := range free {
		take(id)
	}
	return chosen, nil
}

func preStart(ctx context.Context, ep *endpoint, ids []string) error {
	if !ep.opts.GetPreStartRequired() {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, pluginapi.KubeletPreStartContainerRPCTimeoutInSecs*time.Second)
	defer cancel()
	if _, err := ep.client.PreStartContainer(pctx, &pluginapi.PreStartContainerRequest{DevicesIds: ids}); err != nil {
		return fmt.Errorf("device plugin PreStartContainer(%v): %w", ids, err)
	}
	return nil
}

// mergeResponse adds one plugin response to the container's allocation.
// Mounts and device nodes are de-duplicated by container path, CDI devices
// by name; for envs and annotations a later resource wins (logged).
func mergeResponse(alloc *Allocation, r *pluginapi.ContainerAllocateResponse, logger klog.Logger) {
	r = cloneResp(r)
	for k, v := range r.GetEnvs() {
		if old, ok := alloc.Envs[k]; ok && old != v {
			logger.Info("Device plugins set conflicting environment variable; using the later one", "env", k)
		}
		alloc.Envs[k] = v
	}
	for k, v := range r.GetAnnotations() {
		if old, ok := alloc.Annotations[k]; ok && old != v {
			logger.Info("Device plugins set conflicting annotation; using the later one", "annotation", k)
		}
		alloc.Annotations[k] = v
	}
	alloc.Mounts = appendNew(alloc.Mounts, r.GetMounts(), (*pluginapi.Mount).GetContainerPath)
	alloc.Devices = appendNew(alloc.Devices, r.GetDevices(), (*pluginapi.DeviceSpec).GetContainerPath)
	alloc.CDIDevices = appendNew(alloc.CDIDevices, r.GetCdiDevices(), (*pluginapi.CDIDevice).GetName)
}

// appendNew appends to have the items of add whose key none of have's
// has: two resources' plugins may hand out the same mount or device node.
func appendNew[T any](have, add []T, key func(T) string) []T {
	for _, item := range add {
		if !slices.ContainsFunc(have, func(h T) bool { return key(h) == key(item) }) {
			have = append(have, item)
		}
	}
	return have
}

// dropAssignments forgets the container's assignments for the named
// resources (rollback of a failed Allocate). Memory only.
func (m *Manager) dropAssignments(key containerKey, names []string) {
	if len(names) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, name := range names {
		delete(m.assignments[key], name)
	}
	if len(m.assignments[key]) == 0 {
		delete(m.assignments, key)
	}
}

// Release frees all devices of a pod. Call it when the pod is gone.
func (m *Manager) Release(podUID string) {
	m.releaseIf(func(uid string) bool { return uid == podUID })
}

// Retain frees the devices of every pod for which live returns false. The
// agent calls it after a restart, once it knows its pods. live is called
// without the manager's locks held, once per pod holding devices.
func (m *Manager) Retain(live func(podUID string) bool) {
	m.allocMu.Lock()
	m.mu.Lock()
	pods := map[string]bool{}
	for key := range m.assignments {
		pods[key.pod] = true
	}
	m.mu.Unlock()
	m.allocMu.Unlock()

	dead := map[string]bool{}
	for pod := range pods {
		if !live(pod) {
			dead[pod] = true
		}
	}
	m.releaseIf(func(uid string) bool { return dead[uid] })
}

func (m *Manager) releaseIf(drop func(podUID string) bool) {
	m.allocMu.Lock()
	defer m.allocMu.Unlock()
	m.mu.Lock()
	released := map[string][]string{}
	for key, byRes := range m.assignments {
		if !drop(key.pod) {
			continue
		}
		for name, a := range byRes {
			released[name] = append(released[name], a.ids...)
		}
		delete(m.assignments, key)
	}
	logger := m.logger
	m.mu.Unlock()
	if len(released) == 0 {
		return
	}
	logger.Info("Released devices", "devices", released)
	if err := m.writeCheckpoint(); err != nil {
		logger.Error(err, "Writing device checkpoint after release")
	}
}
