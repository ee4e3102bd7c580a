package partition

import (
	"testing"

	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
)

func TestUndecoratedTellsTheWatchCacheApart(t *testing.T) {
	t.Parallel()
	if !undecorated(generic.UndecoratedStorage) {
		t.Error("UndecoratedStorage not recognised")
	}
	if undecorated(genericregistry.StorageWithCacher()) {
		t.Error("StorageWithCacher taken for UndecoratedStorage")
	}
}
