package activation

import (
	"net/http"

	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
)

// Client is a kubernetes.Interface of one tenant's path that offers only
// the API groups tenant controllers use so far (core/v1); any other group
// panics. A full clientset costs ~30 KB an instance, this ~0.5 KB.
type Client struct {
	kubernetes.Interface // nil
	core                 corev1client.CoreV1Interface
}

// CoreV1 is the tenant's core/v1 client.
func (c *Client) CoreV1() corev1client.CoreV1Interface { return c.core }

func newClient(cfg *rest.Config, hc *http.Client) (*Client, error) {
	core, err := corev1client.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	return &Client{core: core}, nil
}
