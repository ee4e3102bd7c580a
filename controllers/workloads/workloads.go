// Package workloads runs upstream's workload controllers per tenant, as
// activation Specs: deployment, replicaset, replicationcontroller,
// statefulset, daemonset, job, cronjob and ttl-after-finished.
package workloads

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kubernetes/pkg/controller/deployment"
	deploymentutil "k8s.io/kubernetes/pkg/controller/deployment/util"
	"k8s.io/kubernetes/pkg/controller/job"
	"k8s.io/kubernetes/pkg/controller/replicaset"
	"k8s.io/kubernetes/pkg/controller/replication"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/controllers/activation"
)

// Controller names.
const (
	DeploymentName = "deployment"
	ReplicaSetName = "replicaset"
	// ReplicationControllerName is kube-controller-manager's name for it.
	ReplicationControllerName = "replicationcontroller"
	JobName                   = "job"
)

// Caches are the cross-tenant caches the controllers read.
type Caches struct {
	Pods        *crosstenant.Cache
	ReplicaSets *crosstenant.Cache
	// ReplicationControllers: upstream's garbage collector tests and older
	// tools still use them.
	ReplicationControllers *crosstenant.Cache
	Deployments            *crosstenant.Cache
	Jobs                   *crosstenant.Cache
	CronJobs               *crosstenant.Cache
	// StatefulSets and ControllerRevisions: the statefulset controller's.
	StatefulSets        *crosstenant.Cache
	ControllerRevisions *crosstenant.Cache
	DaemonSets          *crosstenant.Cache
}

// controlledBy tells whether obj (old or new) is controlled by a kind,
// or by nothing (an orphan a controller may adopt).
func controlledBy(oldObj, newObj any, kind string) bool {
	for _, obj := range []any{crosstenant.Unwrap(oldObj), newObj} {
		m, ok := obj.(metav1.Object)
		if !ok {
			continue
		}
		ref := metav1.GetControllerOfNoCopy(m)
		if ref == nil || ref.Kind == kind {
			return true
		}
	}
	return false
}

// dependentsOf is the Relevant of a controller of kind whose dependents
// are of type D: every change of its own objects, and changes of
// dependents it controls or may adopt.
func dependentsOf[D any](kind string) func(string, any, any) bool {
	return func(_ string, oldObj, newObj any) bool {
		if _, ok := crosstenant.Unwrap(oldObj).(D); ok {
			return controlledBy(oldObj, newObj, kind)
		}
		if _, ok := newObj.(D); ok {
			return controlledBy(nil, newObj, kind)
		}
		return true
	}
}

func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// rollingOut tells whether the controller still has a rollout of d to
// watch: not complete, not paused, and its progress deadline not yet
// passed (the deadline comes from the clock, not from an event).
func rollingOut(d *appsv1.Deployment) bool {
	if d.DeletionTimestamp != nil || d.Spec.Paused {
		return d.Status.ObservedGeneration < d.Generation
	}
	if d.Status.ObservedGeneration < d.Generation {
		return true
	}
	spec := d.DeepCopy()
	spec.Spec.Replicas = new(replicas(d.Spec.Replicas))
	if deploymentutil.DeploymentComplete(spec, &d.Status) {
		return false
	}
	c := deploymentutil.GetDeploymentCondition(d.Status, appsv1.DeploymentProgressing)
	return c == nil || c.Reason != deploymentutil.TimedOutReason
}

// Deployments is upstream's deployment controller per tenant.
func Deployments(c Caches) activation.Spec {
	anyRollingOut := func(t string) bool {
		for _, obj := range c.Deployments.InTenant(t) {
			if rollingOut(obj.(*appsv1.Deployment)) {
				return true
			}
		}
		return false
	}
	return activation.Spec{
		Name:  DeploymentName,
		Watch: []*crosstenant.Cache{c.Deployments, c.ReplicaSets, c.Pods},
		Relevant: func(_ string, oldObj, newObj any) bool {
			switch o := crosstenant.Unwrap(oldObj).(type) {
			case *corev1.Pod:
				// Recreate waits for the old pods to be gone.
				return newObj == nil && metav1.GetControllerOfNoCopy(o) != nil
			case *appsv1.ReplicaSet:
				return controlledBy(oldObj, newObj, "Deployment")
			}
			if _, ok := newObj.(*appsv1.ReplicaSet); ok {
				return controlledBy(nil, newObj, "Deployment")
			}
			_, isPod := newObj.(*corev1.Pod)
			return !isPod
		},
		Pending: anyRollingOut,
		Keep:    anyRollingOut,
		Build: func(ctx context.Context, env activation.Env) (func(context.Context), error) {
			apps, core := env.Informers.Apps().V1(), env.Informers.Core().V1()
			dc, err := deployment.NewDeploymentController(ctx, apps.Deployments(), apps.ReplicaSets(), core.Pods(), env.Client)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context) { dc.Run(ctx, 1) }, nil
		},
	}
}

// waiting tells whether rs has work: a spec not yet observed, a replica
// count not yet reached, or ready pods waiting out minReadySeconds.
func waiting(rs *appsv1.ReplicaSet) bool {
	return rs.Status.ObservedGeneration < rs.Generation ||
		rs.Status.Replicas != replicas(rs.Spec.Replicas) ||
		(rs.Spec.MinReadySeconds > 0 && rs.Status.ReadyReplicas > rs.Status.AvailableReplicas)
}

// ReplicaSets is upstream's replicaset controller per tenant.
func ReplicaSets(c Caches) activation.Spec {
	return activation.Spec{
		Name:     ReplicaSetName,
		Watch:    []*crosstenant.Cache{c.ReplicaSets, c.Pods},
		Relevant: dependentsOf[*corev1.Pod]("ReplicaSet"),
		Pending: func(t string) bool {
			for _, obj := range c.ReplicaSets.InTenant(t) {
				if waiting(obj.(*appsv1.ReplicaSet)) {
					return true
				}
			}
			return false
		},
		Keep: func(t string) bool {
			for _, obj := range c.ReplicaSets.InTenant(t) {
				rs := obj.(*appsv1.ReplicaSet)
				if rs.Spec.MinReadySeconds > 0 && rs.Status.ReadyReplicas > rs.Status.AvailableReplicas {
					return true
				}
			}
			return false
		},
		Build: func(ctx context.Context, env activation.Env) (func(context.Context), error) {
			apps, core := env.Informers.Apps().V1(), env.Informers.Core().V1()
			rsc := replicaset.NewReplicaSetController(ctx, apps.ReplicaSets(), core.Pods(), env.Client, replicaset.BurstReplicas)
			return func(ctx context.Context) { rsc.Run(ctx, 1) }, nil
		},
	}
}

// ReplicationControllers is upstream's replication manager (the replicaset
// controller over ReplicationControllers) per tenant.
func ReplicationControllers(c Caches) activation.Spec {
	return activation.Spec{
		Name:     ReplicationControllerName,
		Watch:    []*crosstenant.Cache{c.ReplicationControllers, c.Pods},
		Relevant: dependentsOf[*corev1.Pod]("ReplicationController"),
		Pending: func(t string) bool {
			for _, obj := range c.ReplicationControllers.InTenant(t) {
				rc := obj.(*corev1.ReplicationController)
				if rc.Status.ObservedGeneration < rc.Generation || rc.Status.Replicas != replicas(rc.Spec.Replicas) ||
					(rc.Spec.MinReadySeconds > 0 && rc.Status.ReadyReplicas > rc.Status.AvailableReplicas) {
					return true
				}
			}
			return false
		},
		Keep: func(t string) bool {
			for _, obj := range c.ReplicationControllers.InTenant(t) {
				rc := obj.(*corev1.ReplicationController)
				if rc.Spec.MinReadySeconds > 0 && rc.Status.ReadyReplicas > rc.Status.AvailableReplicas {
					return true
				}
			}
			return false
		},
		Build: func(ctx context.Context, env activation.Env) (func(context.Context), error) {
			core := env.Informers.Core().V1()
			rm := replication.NewReplicationManager(ctx, core.Pods(), core.ReplicationControllers(), env.Client, replication.BurstReplicas)
			return func(ctx context.Context) { rm.Run(ctx, 1) }, nil
		},
	}
}

// finished tells whether j has its Complete or Failed condition.
func finished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// Jobs is upstream's job controller per tenant. It stays awake while an
// unfinished job waits on the clock: an active deadline, or the back-off
// after a failed pod.
func Jobs(c Caches) activation.Spec {
	unfinished := func(t string, clock bool) bool {
		for _, obj := range c.Jobs.InTenant(t) {
			j := obj.(*batchv1.Job)
			if finished(j) {
				continue
			}
			if !clock || j.Spec.ActiveDeadlineSeconds != nil || j.Status.Failed > 0 {
				return true
			}
		}
		return false
	}
	return activation.Spec{
		Name:     JobName,
		Watch:    []*crosstenant.Cache{c.Jobs, c.Pods},
		Relevant: dependentsOf[*corev1.Pod]("Job"),
		Pending:  func(t string) bool { return unfinished(t, false) },
		Keep:     func(t string) bool { return unfinished(t, true) },
		Build: func(ctx context.Context, env activation.Env) (func(context.Context), error) {
			// Workloads and PodGroups only with WorkloadWithJob, off by
			// default, as in kube-controller-manager.
			jc, err := job.NewController(ctx, env.Client, env.Informers.Core().V1().Pods(), env.Informers.Batch().V1().Jobs(), nil, nil)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context) { jc.Run(ctx, 1) }, nil
		},
	}
}
