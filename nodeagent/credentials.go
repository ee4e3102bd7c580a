package nodeagent

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	clientset "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	kubeletcertificate "k8s.io/kubernetes/pkg/kubelet/certificate"
	"k8s.io/kubernetes/pkg/kubelet/certificate/bootstrap"
)

// renewalGiveUp is how long the agent runs on an expired certificate it
// cannot renew before it exits, so that a supervisor starts it again with
// its bootstrap credentials (the kubelet's choice).
const renewalGiveUp = 5 * time.Minute

// NodeCredentials returns the client config of node nodeName's own
// identity, system:node:<name> in system:nodes, as the kubelet gets it:
// with bootstrapPath's bootstrap token it asks the management plane for a
// client certificate (a CertificateSigningRequest that the controller
// manager approves and signs), keeps it in certDir, writes kubeconfigPath
// to point at it, and renews it before it expires. A valid kubeconfigPath
// from an earlier start is used as it is. It returns once the node holds
// a certificate, or when ctx ends.
func NodeCredentials(ctx context.Context, nodeName, kubeconfigPath, bootstrapPath, certDir string) (*rest.Config, error) {
	logger := klog.FromContext(ctx).WithValues("node", nodeName)
	certConfig, clientConfig, err := bootstrap.LoadClientConfig(logger, kubeconfigPath, bootstrapPath, certDir)
	if err != nil {
		return nil, fmt.Errorf("loading the node's credentials (--kubeconfig %s, --bootstrap-kubeconfig %s): %w", kubeconfigPath, bootstrapPath, err)
	}
	// The bootstrap token asks for the first certificate; the node's own
	// certificate asks for the next ones.
	clients := func(current *tls.Certificate) (clientset.Interface, error) {
		if current != nil {
			return clientset.NewForConfig(clientConfig)
		}
		return clientset.NewForConfig(certConfig)
	}
	manager, err := kubeletcertificate.NewKubeletClientCertificateManager(certDir, types.NodeName(nodeName),
		clientConfig.CertData, clientConfig.KeyData, clientConfig.CertFile, clientConfig.KeyFile, clients)
	if err != nil {
		return nil, fmt.Errorf("the node's certificate manager: %w", err)
	}
	// Connections carry whichever certificate is current.
	transportConfig := rest.AnonymousClientConfig(clientConfig)
	if _, err := kubeletcertificate.UpdateTransport(logger, ctx.Done(), transportConfig, manager, renewalGiveUp); err != nil {
		return nil, fmt.Errorf("rotating the node's client certificate: %w", err)
	}
	manager.Start()
	go func() {
		<-ctx.Done()
		manager.Stop()
	}()
	if manager.Current() == nil {
		logger.Info("Waiting for the node's client certificate: its signing request must be approved and signed by the controller manager")
	}
	start := time.Now()
	err = wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(context.Context) (bool, error) {
		if manager.Current() != nil {
			return true, nil
		}
		if waited := time.Since(start); waited > 10*time.Second && waited%(10*time.Second) < 250*time.Millisecond {
			logger.Info("Still waiting for the node's client certificate", "waited", waited.Round(time.Second))
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for the node's client certificate: %w", err)
	}
	cert := manager.Current()
	logger.Info("Node client certificate", "subject", cert.Leaf.Subject.CommonName, "expires", cert.Leaf.NotAfter)
	return transportConfig, nil
}
