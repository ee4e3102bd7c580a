// Package images builds the container images the node-agent tests run,
// from local files only: the test machines reach no container registry.
//
// Each image is written as an OCI image-layout tar archive that
// `ctr images import` loads under the image's full name.
package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	_ "crypto/sha256" // registers the hash go-digest computes
	"debug/elf"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	// Pause is the pod sandbox image: a static binary that waits for SIGTERM.
	Pause = "kplex.local/pause:3.10"
	// Busybox is a shell image with the host's static busybox and its applets.
	Busybox = "kplex.local/busybox:1.35"
	// InCluster is an unmodified client-go in-cluster client
	// (incluster/main.go) beside busybox.
	InCluster = "kplex.local/incluster:1.0"
)

// busyboxPath is where Debian's busybox-static installs its binary.
const busyboxPath = "/bin/busybox"

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

//go:embed pause/main.go
var pauseSource []byte

// Build writes one OCI image-layout archive per image into dir and returns
// the image names mapped to the archive paths. Images are rebuilt on every
// call: it takes well under a second once the Go build cache is warm.
func Build(dir string) (map[string]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create image dir: %w", err)
	}
	builders := map[string]func() (Image, error){
		Busybox:   busyboxImage,
		Pause:     pauseImage,
		InCluster: inClusterImage,
	}
	tars := make(map[string]string, len(builders))
	for name, build := range builders {
		img, err := build()
		if err != nil {
			return nil, fmt.Errorf("build image %s: %w", name, err)
		}
		path := filepath.Join(dir, archiveName(name))
		if err := img.WriteLayout(name, path); err != nil {
			return nil, fmt.Errorf("write image %s: %w", name, err)
		}
		tars[name] = path
	}
	return tars, nil
}

// archiveName turns "kplex.local/busybox:1.35" into "busybox_1.35.tar".
func archiveName(name string) string {
	return strings.ReplaceAll(name[strings.LastIndex(name, "/")+1:], ":", "_") + ".tar"
}

// file is one entry of an image's single layer.
type File struct {
	Name string // path in the rootfs, without leading slash
	Mode int64
	Data []byte
	Link string // symlink target; the entry is a symlink when set
	Dir  bool
}

type Image struct {
	Files  []File
	Config ocispec.ImageConfig
}

func busyboxImage() (Image, error) {
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		return Image{}, fmt.Errorf("read host busybox (apt-get install busybox-static): %w", err)
	}
	// A dynamically linked busybox would need the host's libc in the image.
	if err := checkStatic(bin); err != nil {
		return Image{}, fmt.Errorf("%s: %w (install busybox-static)", busyboxPath, err)
	}
	out, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		return Image{}, fmt.Errorf("list busybox applets: %w", err)
	}
	files := []File{
		{Name: "bin", Mode: 0o755, Dir: true},
		{Name: "bin/busybox", Mode: 0o755, Data: bin},
		{Name: "etc", Mode: 0o755, Dir: true},
		{Name: "etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		{Name: "etc/group", Mode: 0o644, Data: []byte("root:x:0:\nnobody:x:65534:\n")},
		{Name: "root", Mode: 0o700, Dir: true},
		{Name: "tmp", Mode: 0o1777, Dir: true},
	}
	// Link every applet the binary provides, so PATH lookups of sh, echo,
	// sleep, wget, nc, httpd... work as in the upstream busybox image.
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		files = append(files, File{Name: "bin/" + applet, Mode: 0o777, Link: "busybox"})
	}
	return Image{
		Files:  files,
		Config: ocispec.ImageConfig{Cmd: []string{"sh"}, Env: []string{defaultPath}},
	}, nil
}

func pauseImage() (Image, error) {
	bin, err := buildPause()
	if err != nil {
		return Image{}, err
	}
	return Image{
		Files:  []File{{Name: "pause", Mode: 0o755, Data: bin}},
		Config: ocispec.ImageConfig{Entrypoint: []string{"/pause"}, Env: []string{defaultPath}},
	}, nil
}

// buildPause compiles pause/main.go as a static binary. It builds the
// embedded source in a throwaway module so it works from any working
// directory and whatever GOFLAGS the caller runs with.
func buildPause() ([]byte, error) {
	tmp, err := os.MkdirTemp("", "kplex-pause")
	if err != nil {
		return nil, fmt.Errorf("build pause: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "go.mod"), []byte("module pause\n\ngo 1.21\n"), 0o644); err != nil {
		return nil, fmt.Errorf("build pause: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "main.go"), pauseSource, 0o644); err != nil {
		return nil, fmt.Errorf("build pause: %w", err)
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", "pause", ".")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOWORK=off", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build pause: %w: %s", err, out)
	}
	bin, err := os.ReadFile(filepath.Join(tmp, "pause"))
	if err != nil {
		return nil, fmt.Errorf("build pause: %w", err)
	}
	return bin, checkStatic(bin)
}

// inClusterImage is busybox with /incluster, built from this module (it
// needs client-go, which the throwaway module of pause has not).
func inClusterImage() (Image, error) {
	img, err := busyboxImage()
	if err != nil {
		return Image{}, err
	}
	tmp, err := os.MkdirTemp("", "kplex-incluster")
	if err != nil {
		return Image{}, fmt.Errorf("build incluster: %w", err)
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "incluster")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "github.com/kplex/kplex/test/images/incluster")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		return Image{}, fmt.Errorf("go build incluster: %w: %s", err, b)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		return Image{}, fmt.Errorf("build incluster: %w", err)
	}
	if err := checkStatic(bin); err != nil {
		return Image{}, err
	}
	img.Files = append(img.Files, File{Name: "incluster", Mode: 0o755, Data: bin})
	return img, nil
}

// checkStatic fails for an ELF binary that asks for a dynamic loader.
func checkStatic(bin []byte) error {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("parse ELF: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("binary is dynamically linked")
		}
	}
	return nil
}

// epoch is every layer entry's mtime, so that rebuilds are byte-identical.
var epoch = time.Unix(0, 0)

// layer returns the uncompressed layer tar.
func (img Image) layer() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range img.Files {
		h := &tar.Header{Name: f.Name, Mode: f.Mode, ModTime: epoch, Typeflag: tar.TypeReg, Size: int64(len(f.Data))}
		switch {
		case f.Dir:
			h.Typeflag, h.Name, h.Size = tar.TypeDir, f.Name+"/", 0
		case f.Link != "":
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, f.Link, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// blob is a content-addressed file of the layout.
type blob struct {
	mediaType string
	data      []byte
}

func (b blob) descriptor() ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: b.mediaType, Digest: digest.FromBytes(b.data), Size: int64(len(b.data))}
}

func jsonBlob(mediaType string, v any) (blob, error) {
	data, err := json.Marshal(v)
	return blob{mediaType, data}, err
}

// writeLayout writes img as an OCI image-layout tar archive at path, with
// its index naming it name.
func (img Image) WriteLayout(name, path string) error {
	raw, err := img.layer()
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	var gz bytes.Buffer
	// Fastest: agnhost's layer is tens of megabytes, and the archives
	// only travel to a local containerd.
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if _, err := zw.Write(raw); err != nil {
		return fmt.Errorf("compress layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compress layer: %w", err)
	}
	layer := blob{ocispec.MediaTypeImageLayerGzip, gz.Bytes()}

	platform := ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"}
	config, err := jsonBlob(ocispec.MediaTypeImageConfig, ocispec.Image{
		Platform: platform,
		Config:   img.Config,
		// diff_ids name the uncompressed layer: containerd checks them on unpack.
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(raw)}},
	})
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	manifest, err := jsonBlob(ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    config.descriptor(),
		Layers:    []ocispec.Descriptor{layer.descriptor()},
	})
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	desc := manifest.descriptor()
	desc.Platform = &platform
	desc.Annotations = map[string]string{
		// containerd's importer prefers its own annotation: with it the image
		// keeps its full name without ctr's --base-name.
		"io.containerd.image.name": name,
		ocispec.AnnotationRefName:  name,
	}
	index, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{desc},
	})
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	ociLayout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return fmt.Errorf("oci-layout: %w", err)
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) error {
		h := &tar.Header{Name: name, Mode: 0o644, ModTime: epoch, Typeflag: tar.TypeReg, Size: int64(len(data))}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{ocispec.ImageBlobsDir + "/", ocispec.ImageBlobsDir + "/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, ModTime: epoch, Typeflag: tar.TypeDir}); err != nil {
			return fmt.Errorf("archive: %w", err)
		}
	}
	for _, b := range []blob{layer, config, manifest} {
		if err := add(ocispec.ImageBlobsDir+"/sha256/"+digest.FromBytes(b.data).Encoded(), b.data); err != nil {
			return fmt.Errorf("archive: %w", err)
		}
	}
	if err := add(ocispec.ImageLayoutFile, ociLayout); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if err := add(ocispec.ImageIndexFile, index); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	// Rename into place so a concurrent reader never sees half an archive.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
