package resourcemetrics

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/metrics/pkg/apis/metrics"
)

// ReaderRole is the ClusterRole that lets view, edit and admin read
// metrics.k8s.io, as metrics-server's installation adds.
const ReaderRole = "system:aggregated-metrics-reader"

// readerRole is part of root's bootstrap policy (so every tenant reads it)
// and aggregated into view, edit and admin by the management plane's
// ClusterRole aggregation.
func readerRole() *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: ReaderRole, Labels: map[string]string{
			"kubernetes.io/bootstrapping":                  "rbac-defaults",
			"rbac.authorization.k8s.io/aggregate-to-view":  "true",
			"rbac.authorization.k8s.io/aggregate-to-edit":  "true",
			"rbac.authorization.k8s.io/aggregate-to-admin": "true",
		}},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{metrics.GroupName}, Resources: []string{"pods", "nodes"}, Verbs: []string{"get", "list", "watch"}}},
	}
}

// EnsureReaderRole writes ReaderRole into root, or brings it back to
// what this version says.
func EnsureReaderRole(ctx context.Context, c kubernetes.Interface) error {
	want := readerRole()
	got, err := c.RbacV1().ClusterRoles().Get(ctx, want.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = c.RbacV1().ClusterRoles().Create(ctx, want, metav1.CreateOptions{})
	case err == nil:
		got.Labels, got.Rules = want.Labels, want.Rules
		_, err = c.RbacV1().ClusterRoles().Update(ctx, got, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("writing ClusterRole %s: %w", want.Name, err)
	}
	return nil
}
