// Package certificates gives node agents their identity in the management
// plane, by kubelet-style TLS bootstrap: an agent authenticates with a
// bootstrap token, creates a CertificateSigningRequest in root for signer
// kubernetes.io/kube-apiserver-client-kubelet (CN system:node:<name>,
// O system:nodes) and gets a client certificate from the apiserver's client
// CA; it renews the same way, authenticated by that certificate.
//
// It runs upstream's controllers over root alone, as kube-controller-manager
// starts them: the approver, which approves a kubelet client CSR when its
// requester may create certificatesigningrequests/nodeclient (any node's
// name: bootstrap) or, for a CSR naming the requester itself,
// certificatesigningrequests/selfnodeclient (renewal), as root's RBAC
// answers a SubjectAccessReview; the signer of
// kubernetes.io/kube-apiserver-client-kubelet, and that signer only, since
// node identities are what kplex issues; and the cleaner, which deletes
// old CSRs. Nodes are shared infrastructure, so their identities are
// root's: a tenant's CSRs live in the tenant and none of these controllers
// ever sees them, so no tenant admin can get a node's certificate.
package certificates

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/controller/certificates/approver"
	"k8s.io/kubernetes/pkg/controller/certificates/cleaner"
	"k8s.io/kubernetes/pkg/controller/certificates/signer"
)

// DefaultDuration is kube-controller-manager's --cluster-signing-duration:
// the longest a signed certificate is valid (a CSR may ask for less with
// spec.expirationSeconds).
const DefaultDuration = 365 * 24 * time.Hour

// Workers of each controller, as kube-controller-manager runs them.
const (
	approverWorkers = 5
	signerWorkers   = 5
	cleanerWorkers  = 1
)

// Options configure the controllers. Zero fields take the defaults.
type Options struct {
	// SigningCertFile and SigningKeyFile are the PEM CA certificate and
	// key (RSA or ECDSA) that sign kubernetes.io/kube-apiserver-client-kubelet
	// CSRs: the apiserver's client CA (--client-ca-file), so that it
	// accepts the certificates. Both or neither; without them no CSR is
	// signed (approval and cleaning still run). They are read again when
	// they change.
	SigningCertFile, SigningKeyFile string
	// Duration is the longest validity of a signed certificate. Default
	// DefaultDuration (8760h).
	Duration time.Duration
}

// WithDefaults returns o with its zero fields defaulted.
func (o Options) WithDefaults() Options {
	if o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	return o
}

// Signs reports whether o names a CA to sign with.
func (o Options) Signs() bool { return o.SigningCertFile != "" || o.SigningKeyFile != "" }

// Validate names the flag that is wrong.
func (o Options) Validate() error {
	if (o.SigningCertFile == "") != (o.SigningKeyFile == "") {
		return errors.New("--cluster-signing-cert-file and --cluster-signing-key-file must be given together")
	}
	if o.Duration < 0 {
		return fmt.Errorf("--cluster-signing-duration %s: must not be negative", o.Duration)
	}
	return nil
}

// AddFlags binds o to kube-controller-manager's flags of the same names.
// kplex signs for kubernetes.io/kube-apiserver-client-kubelet only, so the
// generic --cluster-signing-{cert,key}-file and that signer's own
// --cluster-signing-kubelet-client-{cert,key}-file name the same files:
// give either.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.SigningCertFile, "cluster-signing-cert-file", o.SigningCertFile,
		"PEM CA certificate that signs node agents' client certificates (signer kubernetes.io/kube-apiserver-client-kubelet): the apiserver's --client-ca-file. Without it no CSR is signed.")
	fs.StringVar(&o.SigningKeyFile, "cluster-signing-key-file", o.SigningKeyFile,
		"PEM RSA or ECDSA private key of --cluster-signing-cert-file.")
	fs.StringVar(&o.SigningCertFile, "cluster-signing-kubelet-client-cert-file", o.SigningCertFile,
		"Same as --cluster-signing-cert-file: kplex signs for kubernetes.io/kube-apiserver-client-kubelet only.")
	fs.StringVar(&o.SigningKeyFile, "cluster-signing-kubelet-client-key-file", o.SigningKeyFile,
		"Same as --cluster-signing-key-file.")
	fs.DurationVar(&o.Duration, "cluster-signing-duration", o.Duration,
		"The longest validity of a signed node certificate; a CSR may ask for less with spec.expirationSeconds. 0 means 8760h.")
}

// Run approves, signs and cleans root's CSRs until ctx ends. loopback
// addresses the management plane, with the right to approve and sign
// CSRs of signer kubernetes.io/kube-apiserver-client-kubelet and to
// create SubjectAccessReviews (system:masters does).
func Run(ctx context.Context, loopback *rest.Config, opts Options) error {
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	opts = opts.WithDefaults()
	logger := klog.FromContext(ctx)
	client, err := kubernetes.NewForConfig(rest.AddUserAgent(rest.CopyConfig(loopback), "kplex-controller-manager/certificate-controller"))
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	csrs := factory.Certificates().V1().CertificateSigningRequests()

	runs := []func(context.Context){}
	approving := approver.NewCSRApprovingController(ctx, client, csrs)
	runs = append(runs, func(ctx context.Context) { approving.Run(ctx, approverWorkers) })
	if opts.Signs() {
		signing, err := signer.NewKubeletClientCSRSigningController(ctx, client, csrs, opts.SigningCertFile, opts.SigningKeyFile, opts.Duration)
		if err != nil {
			return fmt.Errorf("certificates: signer kubernetes.io/kube-apiserver-client-kubelet: %w", err)
		}
		runs = append(runs, func(ctx context.Context) { signing.Run(ctx, signerWorkers) })
	} else {
		logger.Info("Not signing node certificates: no --cluster-signing-cert-file and --cluster-signing-key-file; CSRs are approved but stay unsigned")
	}
	cleaning := cleaner.NewCSRCleanerController(client.CertificatesV1().CertificateSigningRequests(), csrs)
	runs = append(runs, func(ctx context.Context) { cleaning.Run(ctx, cleanerWorkers) })

	factory.Start(ctx.Done())
	defer factory.Shutdown()
	var wg sync.WaitGroup
	for _, run := range runs {
		wg.Go(func() { run(ctx) })
	}
	wg.Wait()
	return nil
}
