package tenants

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	tenancyv1alpha1 "github.com/kplex/kplex/apis/tenancy/v1alpha1"
	"github.com/kplex/kplex/tenant"
)

// ErrUnreachable wraps failures to reach the server at all.
var ErrUnreachable = errors.New("kplex server unreachable")

// Client manages the tenants of one kplex server, as a management-plane
// identity.
type Client struct {
	config  *rest.Config
	dynamic dynamic.ResourceInterface
	http    *http.Client
}

// New returns a Client for the server root is a config of.
func New(root *rest.Config) (*Client, error) {
	cfg := rest.CopyConfig(root)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = -1, 0
	}
	d, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building tenant client: %w", err)
	}
	h, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("building tenant client: %w", err)
	}
	return &Client{config: cfg, dynamic: d.Resource(tenancyv1alpha1.TenantsResource), http: h}, nil
}

// Create creates tenant name. It validates the name before sending anything.
func (c *Client) Create(ctx context.Context, name string) (*tenancyv1alpha1.Tenant, error) {
	return c.CreateWithSpec(ctx, name, tenancyv1alpha1.TenantSpec{})
}

// CreateWithSpec creates tenant name with spec (its Pod Security level).
func (c *Client) CreateWithSpec(ctx context.Context, name string, spec tenancyv1alpha1.TenantSpec) (*tenancyv1alpha1.Tenant, error) {
	if err := tenant.ValidateName(name); err != nil {
		return nil, err
	}
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&spec)
	if err != nil {
		return nil, fmt.Errorf("encoding tenant %s's spec: %w", name, err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": content}}
	u.SetAPIVersion(tenancyv1alpha1.SchemeGroupVersion.String())
	u.SetKind("Tenant")
	u.SetName(name)
	created, err := c.dynamic.Create(ctx, u, metav1.CreateOptions{})
	if err != nil {
		return nil, c.explain(err, name)
	}
	return fromUnstructured(created)
}

// Get returns tenant name.
func (c *Client) Get(ctx context.Context, name string) (*tenancyv1alpha1.Tenant, error) {
	u, err := c.dynamic.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, c.explain(err, name)
	}
	return fromUnstructured(u)
}

// List returns every tenant, sorted by name.
func (c *Client) List(ctx context.Context) ([]tenancyv1alpha1.Tenant, error) {
	list, err := c.dynamic.List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, c.explain(err, "")
	}
	out := make([]tenancyv1alpha1.Tenant, 0, len(list.Items))
	for i := range list.Items {
		t, err := fromUnstructured(&list.Items[i])
		if err != nil {
			return nil, err
		}
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete deletes tenant name; its data goes before the object does.
func (c *Client) Delete(ctx context.Context, name string) error {
	if err := c.dynamic.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return c.explain(err, name)
	}
	return nil
}

// WaitServing polls until the tenant answers GET namespaces/default, the
// moment a user can start working in it.
func (c *Client) WaitServing(ctx context.Context, name string) error {
	url := c.config.Host + tenant.Path(name) + "/api/v1/namespaces/default"
	return poll(ctx, func() (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return false, fmt.Errorf("%w: %v", ErrUnreachable, err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// WaitGone polls until tenant name no longer exists.
func (c *Client) WaitGone(ctx context.Context, name string) error {
	return poll(ctx, func() (bool, error) {
		_, err := c.dynamic.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
}

// Credentials returns tenant name's admin credentials.
func (c *Client) Credentials(ctx context.Context, name string) (*tenancyv1alpha1.Credentials, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.config.Host+tenancyv1alpha1.CredentialsPath+name, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("cluster %q not found", name)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching credentials of cluster %q: %s", name, resp.Status)
	}
	var creds tenancyv1alpha1.Credentials
	if err := json.NewDecoder(resp.Body).Decode(&creds); err != nil {
		return nil, fmt.Errorf("decoding credentials of cluster %q: %w", name, err)
	}
	return &creds, nil
}

// explain turns API errors into messages about clusters.
func (c *Client) explain(err error, name string) error {
	switch {
	case apierrors.IsAlreadyExists(err):
		return fmt.Errorf("cluster %q already exists: %w", name, err)
	case apierrors.IsNotFound(err) && name != "":
		return fmt.Errorf("cluster %q not found: %w", name, err)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("the server at %s does not serve kplex tenants: %w", c.config.Host, err)
	case apierrors.ReasonForError(err) == metav1.StatusReasonUnknown && !apierrors.IsInternalError(err):
		return fmt.Errorf("%w at %s: %v (is it running? try `kplex up`)", ErrUnreachable, c.config.Host, err)
	}
	return err
}

func poll(ctx context.Context, done func() (bool, error)) error {
	delay := time.Millisecond
	for {
		ok, err := done()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
			}
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

func fromUnstructured(u *unstructured.Unstructured) (*tenancyv1alpha1.Tenant, error) {
	var t tenancyv1alpha1.Tenant
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &t); err != nil {
		return nil, fmt.Errorf("decoding tenant %q: %w", u.GetName(), err)
	}
	return &t, nil
}

// Config is the management-plane config the client uses.
func (c *Client) Config() *rest.Config { return rest.CopyConfig(c.config) }
