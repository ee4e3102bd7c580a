package workloads

import (
	"context"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/pkg/controller/cronjob"
	"k8s.io/kubernetes/pkg/controller/ttlafterfinished"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/controllers/activation"
)

// Controller names.
const (
	CronJobName          = "cronjob"
	TTLAfterFinishedName = "ttl-after-finished"
)

// nextRun is when cj next runs after its last run (or its creation), as
// upstream's controller reads the schedule; zero if never (suspended, or
// a schedule upstream would refuse too).
func nextRun(cj *batchv1.CronJob) time.Time {
	if cj.Spec.Suspend != nil && *cj.Spec.Suspend {
		return time.Time{}
	}
	spec := cj.Spec.Schedule
	if cj.Spec.TimeZone != nil {
		spec = fmt.Sprintf("TZ=%s %s", *cj.Spec.TimeZone, spec)
	}
	schedule, err := cron.ParseStandard(spec)
	if err != nil {
		return time.Time{}
	}
	from := cj.CreationTimestamp.Time
	if cj.Status.LastScheduleTime != nil {
		from = cj.Status.LastScheduleTime.Time
	}
	return schedule.Next(from)
}

// earliest returns the earliest non-zero time of f over the objects.
func earliest[T any](objs []any, f func(T) time.Time) time.Time {
	var out time.Time
	for _, obj := range objs {
		o, ok := obj.(T)
		if !ok {
			continue
		}
		if at := f(o); !at.IsZero() && (out.IsZero() || at.Before(out)) {
			out = at
		}
	}
	return out
}

// CronJobs is upstream's cronjob controller per tenant. A tenant's slot
// sleeps between runs and is woken for the next one.
func CronJobs(c Caches) activation.Spec {
	next := func(t string) time.Time { return earliest(c.CronJobs.InTenant(t), nextRun) }
	return activation.Spec{
		Name:     CronJobName,
		Watch:    []*crosstenant.Cache{c.CronJobs, c.Jobs},
		Relevant: dependentsOf[*batchv1.Job]("CronJob"),
		Pending: func(t string) bool {
			at := next(t)
			return !at.IsZero() && !at.After(time.Now())
		},
		NextWake: next,
		Build: func(ctx context.Context, env activation.Env) (func(context.Context), error) {
			batch := env.Informers.Batch().V1()
			cc, err := cronjob.NewControllerV2(ctx, batch.Jobs(), batch.CronJobs(), env.Client)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context) { cc.Run(ctx, 1) }, nil
		},
	}
}

// expiry is when finished job j is to be deleted, zero if never.
func expiry(j *batchv1.Job) time.Time {
	if j.Spec.TTLSecondsAfterFinished == nil || j.DeletionTimestamp != nil {
		return time.Time{}
	}
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Add(time.Duration(*j.Spec.TTLSecondsAfterFinished) * time.Second)
		}
	}
	return time.Time{}
}

// TTLAfterFinished is upstream's ttl-after-finished controller per tenant:
// woken when a job with a TTL finishes and when its TTL runs out.
func TTLAfterFinished(c Caches) activation.Spec {
	next := func(t string) time.Time { return earliest(c.Jobs.InTenant(t), expiry) }
	return activation.Spec{
		Name:  TTLAfterFinishedName,
		Watch: []*crosstenant.Cache{c.Jobs},
		Relevant: func(_ string, _, newObj any) bool {
			j, ok := newObj.(*batchv1.Job)
			return ok && !expiry(j).IsZero()
		},
		Pending: func(t string) bool {
			at := next(t)
			return !at.IsZero() && !at.After(time.Now())
		},
		NextWake: next,
		Build: func(ctx context.Context, env activation.Env) (func(context.Context), error) {
			tc := ttlafterfinished.New(ctx, env.Informers.Batch().V1().Jobs(), env.Client)
			return func(ctx context.Context) { tc.Run(ctx, 1) }, nil
		},
	}
}
