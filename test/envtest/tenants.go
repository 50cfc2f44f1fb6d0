package envtest

import (
	"context"
	"fmt"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

// Tenants makes the callers the gateway, the dashboard and kubectl sdfleet serve: service
// accounts with tokens the API server issues and reviews, and RBAC that the access reviews
// answer from, as a cluster administrator would set them up.
type Tenants struct {
	Client client.Client
	Kube   kubernetes.Interface
}

// ServiceAccountToken creates service account ns/name and returns an hour-long token for it
// from the TokenRequest API.
func (t Tenants) ServiceAccountToken(ctx context.Context, ns, name string) (string, error) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	if err := t.Client.Create(ctx, sa); err != nil {
		return "", fmt.Errorf("create service account %s/%s: %w", ns, name, err)
	}
	tr, err := t.Kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name,
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("request a token for %s/%s: %w", ns, name, err)
	}
	return tr.Status.Token, nil
}

// GrantJobs lets service account ns/name use verbs on ImageGenerationJobs in ns, through a
// Role and RoleBinding of its name.
func (t Tenants) GrantJobs(ctx context.Context, ns, name string, verbs ...string) error {
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{sdfleetv1alpha1.GroupVersion.Group},
			Resources: []string{"imagegenerationjobs"}, Verbs: verbs}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}}}
	for _, obj := range []client.Object{role, binding} {
		if err := t.Client.Create(ctx, obj); err != nil {
			return fmt.Errorf("grant %s/%s %v on jobs: %w", ns, name, verbs, err)
		}
	}
	return nil
}

// GrantGPUNodeRead lets service account ns/name get, list and watch the cluster's GPUNodes,
// through a ClusterRole and ClusterRoleBinding named ns-name-gpus.
func (t Tenants) GrantGPUNodeRead(ctx context.Context, ns, name string) error {
	crName := ns + "-" + name + "-gpus"
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: crName},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{sdfleetv1alpha1.GroupVersion.Group},
			Resources: []string{"gpunodes"}, Verbs: []string{"get", "list", "watch"}}}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: crName},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: crName},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}}}
	for _, obj := range []client.Object{role, binding} {
		if err := t.Client.Create(ctx, obj); err != nil {
			return fmt.Errorf("grant %s/%s read of GPUNodes: %w", ns, name, err)
		}
	}
	return nil
}

// Grant gives service account ns/name the rules in namespace ns, through a Role and
// RoleBinding named name-suffix.
func (t Tenants) Grant(ctx context.Context, ns, name, suffix string, rules ...rbacv1.PolicyRule) error {
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name + "-" + suffix, Namespace: ns}, Rules: rules}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name + "-" + suffix, Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}}}
	for _, obj := range []client.Object{role, binding} {
		if err := t.Client.Create(ctx, obj); err != nil {
			return fmt.Errorf("grant %s/%s %s: %w", ns, name, suffix, err)
		}
	}
	return nil
}
