package main

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// listWatcher is a typed client-go client of one resource.
type listWatcher[L interface{ GetResourceVersion() string }] interface {
	List(context.Context, metav1.ListOptions) (L, error)
	Watch(context.Context, metav1.ListOptions) (watch.Interface, error)
}

// watchFrom lists what opts select and watches it from there. The server
// closes a watch that falls behind in a burst (as kube-apiserver's watch
// cache does); the returned watch goes on from the last event it passed.
func watchFrom[L interface{ GetResourceVersion() string }](ctx context.Context, c listWatcher[L], opts metav1.ListOptions) (watch.Interface, error) {
	list, err := c.List(ctx, opts)
	if err != nil {
		return nil, err
	}
	return watchtools.NewRetryWatcherWithContext(ctx, list.GetResourceVersion(), &cache.ListWatch{
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector, o.FieldSelector = opts.LabelSelector, opts.FieldSelector
			return c.Watch(ctx, o)
		},
	})
}
