package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestBuild checks the archives are OCI layouts whose blobs match their
// digests and whose layer holds the entrypoint.
func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles pause and needs busybox-static")
	}
	tars, err := Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{Busybox: "bin/sh", Pause: "pause"} {
		t.Run(name, func(t *testing.T) {
			files := untar(t, readFile(t, tars[name]))
			if _, ok := files[ocispec.ImageLayoutFile]; !ok {
				t.Fatal("no oci-layout file")
			}
			var index ocispec.Index
			decode(t, files[ocispec.ImageIndexFile], &index)
			if len(index.Manifests) != 1 {
				t.Fatalf("index has %d manifests, want 1", len(index.Manifests))
			}
			desc := index.Manifests[0]
			if got := desc.Annotations["io.containerd.image.name"]; got != name {
				t.Errorf("io.containerd.image.name = %q, want %q", got, name)
			}
			var manifest ocispec.Manifest
			decode(t, readBlob(t, files, desc), &manifest)
			var config ocispec.Image
			decode(t, readBlob(t, files, manifest.Config), &config)

			zr, err := gzip.NewReader(bytes.NewReader(readBlob(t, files, manifest.Layers[0])))
			if err != nil {
				t.Fatal(err)
			}
			layer, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			if got := digest.FromBytes(layer); !slices.Equal(config.RootFS.DiffIDs, []digest.Digest{got}) {
				t.Errorf("diff_ids = %v, want [%s]", config.RootFS.DiffIDs, got)
			}
			if _, ok := untar(t, layer)[want]; !ok {
				t.Errorf("layer lacks %s", want)
			}
		})
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// untar maps entry names to contents (empty for links and directories).
func untar(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	files := make(map[string][]byte)
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if files[h.Name], err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
	}
}

// readBlob returns the blob desc points to, checking its digest and size.
func readBlob(t *testing.T, files map[string][]byte, desc ocispec.Descriptor) []byte {
	t.Helper()
	data, ok := files["blobs/sha256/"+desc.Digest.Encoded()]
	if !ok {
		t.Fatalf("blob %s missing", desc.Digest)
	}
	if digest.FromBytes(data) != desc.Digest || int64(len(data)) != desc.Size {
		t.Fatalf("blob %s does not match its descriptor", desc.Digest)
	}
	return data
}

func decode(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}
