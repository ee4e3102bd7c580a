package nodeauth

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// BootstrappersGroup is the group of every bootstrap token's user.
const BootstrappersGroup = "system:bootstrappers"

// bootstrapBindings let node agents join as kubelets do under kubeadm: a
// bootstrap token may ask for a node client certificate, which the
// approver then grants; a node may renew its own.
func bootstrapBindings() []*rbacv1.ClusterRoleBinding {
	bind := func(name, group, role string) *rbacv1.ClusterRoleBinding {
		return &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/bootstrapping": "rbac-defaults"}},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: group}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		}
	}
	return []*rbacv1.ClusterRoleBinding{
		bind("kplex:node-bootstrapper", BootstrappersGroup, "system:node-bootstrapper"),
		bind("kplex:node-autoapprove-bootstrap", BootstrappersGroup, "system:certificates.k8s.io:certificatesigningrequests:nodeclient"),
		bind("kplex:node-certificate-requests", "system:nodes", "system:node-bootstrapper"),
		bind("kplex:node-autoapprove-certificate-rotation", "system:nodes", "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"),
	}
}

// EnsureBootstrapBindings writes the node bootstrap bindings into root.
func EnsureBootstrapBindings(ctx context.Context, c kubernetes.Interface) error {
	for _, want := range bootstrapBindings() {
		got, err := c.RbacV1().ClusterRoleBindings().Get(ctx, want.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = c.RbacV1().ClusterRoleBindings().Create(ctx, want, metav1.CreateOptions{})
		case err == nil && (got.RoleRef != want.RoleRef):
			err = c.RbacV1().ClusterRoleBindings().Delete(ctx, want.Name, metav1.DeleteOptions{})
			if err == nil {
				_, err = c.RbacV1().ClusterRoleBindings().Create(ctx, want, metav1.CreateOptions{})
			}
		case err == nil:
			got.Subjects = want.Subjects
			_, err = c.RbacV1().ClusterRoleBindings().Update(ctx, got, metav1.UpdateOptions{})
		}
		if err != nil {
			return fmt.Errorf("writing ClusterRoleBinding %s: %w", want.Name, err)
		}
	}
	return nil
}
