package tenantauth

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// AdminsBinding grants AdminsGroup cluster-admin. It lives in root, whose
// RBAC policy the authorizer evaluates for every tenant; the tenant
// confinement runs first, so the grant never reaches beyond a member's own
// tenant.
func AdminsBinding() *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: AdminsGroup},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: AdminsGroup}},
	}
}

// EnsureAdminsBinding creates or restores AdminsBinding in root.
func EnsureAdminsBinding(ctx context.Context, root kubernetes.Interface) error {
	want := AdminsBinding()
	bindings := root.RbacV1().ClusterRoleBindings()
	existing, err := bindings.Get(ctx, want.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = bindings.Create(ctx, want, metav1.CreateOptions{})
	case err == nil:
		existing.RoleRef, existing.Subjects = want.RoleRef, want.Subjects
		_, err = bindings.Update(ctx, existing, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("ensuring the %s binding: %w", want.Name, err)
	}
	return nil
}
