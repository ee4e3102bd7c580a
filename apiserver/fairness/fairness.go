package fairness

import (
	"context"
	"fmt"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	utilflowcontrol "k8s.io/apiserver/pkg/util/flowcontrol"
	fq "k8s.io/apiserver/pkg/util/flowcontrol/fairqueuing"
	fcrequest "k8s.io/apiserver/pkg/util/flowcontrol/request"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kplex/kplex/apiserver/tenantauth"
	"github.com/kplex/kplex/tenant"
)

// TenantsGroup is the group of the identity a tenant's requests are
// classified as; FlowSchema Name matches it.
const TenantsGroup = "kplex:tenants"

// Name names the FlowSchema and PriorityLevelConfiguration of tenants.
const Name = "kplex-tenants"

// UserPrefix prefixes the tenant's name in the flow distinguisher.
const UserPrefix = "kplex:tenant:"

// PerTenant wraps the apiserver's flow control so that tenants' requests
// are classified by tenant, and each tenant executes at most inflight's
// bound at once. Requests that wait for the tenant's bound hold no seat of
// the tenant's priority level, so they delay no other tenant.
func PerTenant(inner utilflowcontrol.Interface, inflight *Inflight) utilflowcontrol.Interface {
	return perTenant{inner, inflight}
}

type perTenant struct {
	utilflowcontrol.Interface
	inflight *Inflight
}

func (p perTenant) Handle(ctx context.Context, digest utilflowcontrol.RequestDigest,
	noteFn func(*flowcontrolv1.FlowSchema, *flowcontrolv1.PriorityLevelConfiguration, string),
	workEstimator func() fcrequest.WorkEstimate, queueNoteFn fq.QueueNoteFn, execFn func()) {
	if t := tenant.FromContext(ctx); t != tenant.Root && t != tenant.Wildcard && !tenantauth.Privileged(digest.User) {
		digest.User = &user.DefaultInfo{Name: UserPrefix + t, Groups: []string{TenantsGroup, user.AllAuthenticated}}
		// Not calling execFn is how a request is refused: the filter
		// answers 429 Too Many Requests with Retry-After.
		release, ok := p.inflight.Acquire(ctx, t)
		if !ok {
			return
		}
		defer release()
	}
	p.Interface.Handle(ctx, digest, noteFn, workEstimator, queueNoteFn, execFn)
}

// Options shape the tenants' priority level.
type Options struct {
	// ConcurrencyShares is the level's share of the server's concurrency
	// against the other levels' (workload-low has 100, global-default 20).
	ConcurrencyShares int32
	// Queues and HandSize are shuffle sharding's: with many tenants, two
	// share all their queues only rarely.
	Queues, HandSize, QueueLengthLimit int32
	// MaxInflight bounds the requests one tenant executes at once (0: no
	// bound); up to QueueLengthLimit more wait for it, beyond that 429.
	MaxInflight int
}

// DefaultOptions keep the tenants' level small on purpose: requests
// executing at once share the CPU, so a flooding tenant must wait in its
// queues rather than crowd the others in execution.
var DefaultOptions = Options{ConcurrencyShares: 10, Queues: 128, HandSize: 6, QueueLengthLimit: 50, MaxInflight: DefaultMaxInflightPerTenant()}

// PriorityLevel returns the tenants' PriorityLevelConfiguration. It lends
// and borrows nothing, so its limit holds whatever the other levels do.
func PriorityLevel(o Options) *flowcontrolv1.PriorityLevelConfiguration {
	return &flowcontrolv1.PriorityLevelConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: Name},
		Spec: flowcontrolv1.PriorityLevelConfigurationSpec{
			Type: flowcontrolv1.PriorityLevelEnablementLimited,
			Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{
				NominalConcurrencyShares: ptr.To(o.ConcurrencyShares),
				LendablePercent:          ptr.To(int32(0)),
				BorrowingLimitPercent:    ptr.To(int32(0)),
				LimitResponse: flowcontrolv1.LimitResponse{
					Type: flowcontrolv1.LimitResponseTypeQueue,
					Queuing: &flowcontrolv1.QueuingConfiguration{
						Queues: o.Queues, HandSize: o.HandSize, QueueLengthLimit: o.QueueLengthLimit,
					},
				},
			},
		},
	}
}

// FlowSchema returns the FlowSchema that puts every tenant's requests in
// the tenants' level, one flow per tenant. Its precedence comes before the
// suggested schemas that match by group (service-accounts, 9000;
// global-default, 9900), which a tenant's identity would otherwise match.
func FlowSchema() *flowcontrolv1.FlowSchema {
	return &flowcontrolv1.FlowSchema{
		ObjectMeta: metav1.ObjectMeta{Name: Name},
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: Name},
			MatchingPrecedence:         8000,
			DistinguisherMethod:        &flowcontrolv1.FlowDistinguisherMethod{Type: flowcontrolv1.FlowDistinguisherMethodByUserType},
			Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
				Subjects: []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindGroup, Group: &flowcontrolv1.GroupSubject{Name: TenantsGroup}}},
				ResourceRules: []flowcontrolv1.ResourcePolicyRule{{
					Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, ClusterScope: true, Namespaces: []string{"*"},
				}},
				NonResourceRules: []flowcontrolv1.NonResourcePolicyRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}},
			}},
		},
	}
}

// Ensure creates or restores the tenants' level and schema in root.
func Ensure(ctx context.Context, root kubernetes.Interface, o Options) error {
	level := PriorityLevel(o)
	if err := ensure(ctx, root.FlowcontrolV1().PriorityLevelConfigurations(), level, level.Name, func(cur *flowcontrolv1.PriorityLevelConfiguration) {
		cur.Spec = level.Spec
	}); err != nil {
		return fmt.Errorf("ensuring priority level %s: %w", level.Name, err)
	}
	schema := FlowSchema()
	if err := ensure(ctx, root.FlowcontrolV1().FlowSchemas(), schema, schema.Name, func(cur *flowcontrolv1.FlowSchema) {
		cur.Spec = schema.Spec
	}); err != nil {
		return fmt.Errorf("ensuring flow schema %s: %w", schema.Name, err)
	}
	return nil
}

type objects[T any] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
}

// ensure creates want, or sets the spec of the existing object.
func ensure[T any](ctx context.Context, c objects[T], want T, name string, setSpec func(cur T)) error {
	cur, err := c.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = c.Create(ctx, want, metav1.CreateOptions{})
	case err == nil:
		setSpec(cur)
		_, err = c.Update(ctx, cur, metav1.UpdateOptions{})
	}
	return err
}
