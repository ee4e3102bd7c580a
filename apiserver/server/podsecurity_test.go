package server_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	tenancyv1alpha1 "github.com/kplex/kplex/apis/tenancy/v1alpha1"
	"github.com/kplex/kplex/apiserver/server/servertest"
)

func privilegedPod(name string) *corev1.Pod {
	p := pod(name)
	p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptrTo(true)}
	return p
}

// wantFloorRefusal checks err is upstream's 403 for a pod that violates
// the management plane's level for tenantName, naming the failed check,
// and that nothing was stored.
func wantFloorRefusal(ctx context.Context, t *testing.T, c kubernetes.Interface, err error, name, level, tenantName, check string) {
	t.Helper()
	var status *apierrors.StatusError
	want := `violates PodSecurity "` + level + `:latest" set by the management plane for tenant ` + tenantName + ": " + check
	if !errors.As(err, &status) || status.ErrStatus.Code != http.StatusForbidden || !strings.Contains(err.Error(), want) {
		t.Errorf("pod %s: %v, want 403 Forbidden containing %q", name, err, want)
	}
	if _, err := c.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the refused pod %s was stored: %v", name, err)
	}
}

func setTenantPodSecurity(ctx context.Context, t *testing.T, e *servertest.Env, name, level string) error {
	t.Helper()
	client, err := dynamic.NewForConfig(e.Admin)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Resource(tenancyv1alpha1.TenantsResource).Patch(ctx, name, types.MergePatchType,
		[]byte(`{"spec":{"podSecurity":"`+level+`"}}`), metav1.PatchOptions{})
	return err
}

// TestIntegrationPodSecurityFloorIsTheManagementPlanes: a tenant's pods
// meet the level its Tenant sets (baseline by default), whatever the
// tenant's namespace labels say; labels may only tighten it; another
// tenant's level is its own; raising a level keeps the pods that run; and
// a Tenant naming no level at all is refused with the field named.
func TestIntegrationPodSecurityFloorIsTheManagementPlanes(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	mallory := servertest.Client(t, e.CreateTenant(t, "mallory"))
	trusted := servertest.Client(t, e.CreateTenant(t, "floor-trusted"))
	if err := setTenantPodSecurity(ctx, t, e, "floor-trusted", "privileged"); err != nil {
		t.Fatal(err)
	}

	// The default level is baseline, shown on the Tenant.
	got, err := e.Tenants.Get(ctx, "mallory")
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.PodSecurity != "baseline" {
		t.Errorf("mallory's spec.podSecurity = %q, want the default baseline", got.Spec.PodSecurity)
	}

	// A label asking for privileged does not loosen the floor.
	if _, err := mallory.CoreV1().Namespaces().Patch(ctx, "default", types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"privileged"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = mallory.CoreV1().Pods("default").Create(ctx, privilegedPod("priv"), metav1.CreateOptions{})
	wantFloorRefusal(ctx, t, mallory, err, "priv", "baseline", "mallory", `privileged (container "c" must not set securityContext.privileged=true)`)

	hostPath := pod("hostpath")
	hostPath.Spec.Volumes = []corev1.Volume{{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
	_, err = mallory.CoreV1().Pods("default").Create(ctx, hostPath, metav1.CreateOptions{})
	wantFloorRefusal(ctx, t, mallory, err, "hostpath", "baseline", "mallory", `hostPath volumes (volume "root")`)

	// A hook or probe naming a host would have the node send requests
	// for the pod to any address (another tenant's pod included), from the
	// node's own network: refused.
	hook := pod("hook-host")
	hook.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
		HTTPGet: &corev1.HTTPGetAction{Host: "10.244.1.5", Port: intstr.FromInt32(80), Path: "/"}}}
	_, err = mallory.CoreV1().Pods("default").Create(ctx, hook, metav1.CreateOptions{})
	wantFloorRefusal(ctx, t, mallory, err, "hook-host", "baseline", "mallory", `probe or lifecycle host (container "c" uses probe or lifecycle host "10.244.1.5")`)

	// The other tenant, trusted by the operator, runs what mallory may not.
	if _, err := trusted.CoreV1().Pods("default").Create(ctx, privilegedPod("priv"), metav1.CreateOptions{}); err != nil {
		t.Errorf("a privileged tenant's privileged pod: %v", err)
	}

	// A plain pod runs under baseline; raising mallory's level to
	// restricted keeps it, refuses a new one, and lets its labels change.
	if _, err := mallory.CoreV1().Pods("default").Create(ctx, pod("plain"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("a baseline pod: %v", err)
	}
	if err := setTenantPodSecurity(ctx, t, e, "mallory", "restricted"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "mallory's level becomes restricted", func() bool {
		_, err := mallory.CoreV1().Pods("default").Create(ctx, pod(probe("plain-")), metav1.CreateOptions{})
		return err != nil && strings.Contains(err.Error(), `violates PodSecurity "restricted:latest" set by the management plane for tenant mallory`)
	})
	_, err = mallory.CoreV1().Pods("default").Create(ctx, pod("plain2"), metav1.CreateOptions{})
	wantFloorRefusal(ctx, t, mallory, err, "plain2", "restricted", "mallory", `allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false)`)
	if _, err := mallory.CoreV1().Pods("default").Get(ctx, "plain", metav1.GetOptions{}); err != nil {
		t.Errorf("raising the level removed a running pod: %v", err)
	}
	if _, err := mallory.CoreV1().Pods("default").Patch(ctx, "plain", types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"touched":"yes"}}}`), metav1.PatchOptions{}); err != nil {
		t.Errorf("a label change of a pod that predates the level: %v", err)
	}
	_, err = mallory.CoreV1().Pods("default").Patch(ctx, "plain", types.JSONPatchType,
		[]byte(`[{"op":"replace","path":"/spec/containers/0/image","value":"busybox:2"}]`), metav1.PatchOptions{})
	if err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "set by the management plane for tenant mallory") {
		t.Errorf("an image change of a pod below the level: %v, want 403", err)
	}

	// An ephemeral container is judged too.
	if err := setTenantPodSecurity(ctx, t, e, "mallory", "baseline"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "mallory's level is baseline again", func() bool {
		_, err := mallory.CoreV1().Pods("default").Create(ctx, pod(probe("plain-")), metav1.CreateOptions{})
		return err == nil
	})
	running, err := mallory.CoreV1().Pods("default").Get(ctx, "plain", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	running.Spec.EphemeralContainers = append(running.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name: "debug", Image: "busybox", TerminationMessagePolicy: corev1.TerminationMessageReadFile, ImagePullPolicy: corev1.PullIfNotPresent,
		SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN"}}},
	}})
	_, err = mallory.CoreV1().Pods("default").UpdateEphemeralContainers(ctx, "plain", running, metav1.UpdateOptions{})
	if err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `non-default capabilities (container "debug" must not include "SYS_ADMIN" in securityContext.capabilities.add)`) {
		t.Errorf("an ephemeral container adding SYS_ADMIN: %v, want 403 naming it", err)
	}

	// Root, the operator, is not under any tenant's floor.
	root := servertest.Client(t, rootHost(e))
	if _, err := root.CoreV1().Pods("default").Create(ctx, privilegedPod(probe("root-priv-")), metav1.CreateOptions{}); err != nil {
		t.Errorf("root's privileged pod: %v", err)
	}
}

// TestIntegrationPodSecurityLevelIsValidated: a Tenant naming an unknown
// level is refused with 422 naming spec.podSecurity, and nothing is made.
func TestIntegrationPodSecurityLevelIsValidated(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	_, err := e.Tenants.CreateWithSpec(ctx, "bad-level", tenancyv1alpha1.TenantSpec{PodSecurity: "lenient"})
	var status *apierrors.StatusError
	if !errors.As(err, &status) || status.ErrStatus.Code != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), "spec.podSecurity") ||
		!strings.Contains(err.Error(), `Unsupported value: "lenient"`) {
		t.Errorf("a Tenant with level lenient: %v, want 422 naming spec.podSecurity", err)
	}
	if _, err := e.Tenants.Get(ctx, "bad-level"); !apierrors.IsNotFound(err) {
		t.Errorf("the refused Tenant exists: %v", err)
	}
	e.CreateTenant(t, "good-level")
	if err := setTenantPodSecurity(ctx, t, e, "good-level", "root"); err == nil || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.podSecurity") {
		t.Errorf("changing a level to root: %v, want 422 naming spec.podSecurity", err)
	}
}
