package images

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestBuild builds every image with the host's static busybox standing in
// for each program, and reads back the name each archive's index gives.
func TestBuild(t *testing.T) {
	t.Parallel()
	const busybox = "/bin/busybox"
	if _, err := readStatic(busybox); err != nil {
		t.Skipf("needs a static busybox (busybox-static): %v", err)
	}
	src := t.TempDir()
	for _, f := range []string{"agnhost/porter/localhost.crt", "agnhost/porter/localhost.key",
		"kitten/html/kitten.jpg", "kitten/html/data.json", "nautilus/html/nautilus.jpg", "nautilus/html/data.json"} {
		path := filepath.Join(src, "test/images", f)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tars, err := Build(t.TempDir(), Binaries{Agnhost: busybox, Pause: busybox, Nonewprivs: busybox, Busybox: busybox, KubeSrc: src})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		"registry.k8s.io/e2e-test-images/agnhost:2.66.1",
		"registry.k8s.io/e2e-test-images/busybox:1.37.0-2",
		"registry.k8s.io/e2e-test-images/nginx:1.27.0-2",
		"registry.k8s.io/pause:3.10.2",
	} {
		if !slices.Contains(Names(), name) {
			t.Errorf("Names() lacks %s: %q", name, Names())
		}
	}
	if len(tars) != len(Names()) {
		t.Errorf("built %d archives for %d names", len(tars), len(Names()))
	}
	for name, path := range tars {
		if got := indexName(t, path); got != name {
			t.Errorf("%s: index names %q", path, got)
		}
	}
}

// indexName returns the image name an OCI layout archive's index gives.
func indexName(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s: no %s", path, ocispec.ImageIndexFile)
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != ocispec.ImageIndexFile {
			continue
		}
		var index ocispec.Index
		if err := json.NewDecoder(tr).Decode(&index); err != nil {
			t.Fatal(err)
		}
		return index.Manifests[0].Annotations[ocispec.AnnotationRefName]
	}
}
