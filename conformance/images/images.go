// Package images builds the images upstream's e2e suite runs, from local
// files only, under the exact names k8s.io/kubernetes/test/utils/image gives
// them: imported into a node's containerd, `IfNotPresent` finds them and
// nothing is pulled.
//
// Each image is one layer written as an OCI image-layout tar archive that
// `ctr images import` loads under its full name. What goes in them:
//
//   - agnhost (both tags the suite names): the agnhost binary built from
//     k8s.io/kubernetes/test/images/agnhost, over busybox's applets (upstream's
//     is alpine: sh, nc, wget... the tests exec are there; curl and dig are not).
//   - busybox and nonroot (busybox run as uid 1234): the host's static busybox.
//   - pause: kplex's pause (test/images/pause), which waits for SIGTERM.
//   - nginx (both tags): a stand-in, busybox httpd serving "Welcome to nginx!"
//     on port 80 from nginx's html directory: upstream's image cannot be built
//     here, and the tests only need an HTTP server on port 80.
//   - kitten, nautilus: agnhost's test-webserver with upstream's files.
//   - nonewprivs: upstream's nnp, setuid, over busybox.
package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	_ "crypto/sha256" // registers the hash go-digest computes
	"debug/elf"
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

	imageutils "k8s.io/kubernetes/test/utils/image"
)

// Binaries are the programs the images are made of, built beforehand.
type Binaries struct {
	// Agnhost is k8s.io/kubernetes/test/images/agnhost, static.
	Agnhost string
	// Pause is github.com/kplex/kplex/test/images/pause, static.
	Pause string
	// Nonewprivs is k8s.io/kubernetes/test/images/nonewprivs, static.
	Nonewprivs string
	// Busybox is a static busybox; Debian's busybox-static installs /bin/busybox.
	Busybox string
	// KubeSrc is k8s.io/kubernetes's module directory, for the files
	// upstream's images copy (kitten's and nautilus's pictures, porter's
	// certificate).
	KubeSrc string
}

// Names lists the images Build makes, by the name the suite asks for.
func Names() []string {
	var names []string
	for _, r := range recipes() {
		names = append(names, r.name)
	}
	return names
}

type recipe struct {
	name  string
	build func(Binaries) (image, error)
}

func recipes() []recipe {
	agnhost := func(b Binaries) (image, error) { return agnhostImage(b) }
	nginx := func(b Binaries) (image, error) { return nginxImage(b) }
	return []recipe{
		{imageutils.GetE2EImage(imageutils.Agnhost), agnhost},
		{imageutils.GetE2EImage(imageutils.AgnhostPrev), agnhost},
		{imageutils.GetE2EImage(imageutils.BusyBox), busyboxImage},
		{imageutils.GetE2EImage(imageutils.NonRoot), nonRootImage},
		{imageutils.GetE2EImage(imageutils.Nonewprivs), nonewprivsImage},
		{imageutils.GetPauseImageName(), pauseImage},
		{imageutils.GetE2EImage(imageutils.Nginx), nginx},
		{imageutils.GetE2EImage(imageutils.NginxNew), nginx},
		{imageutils.GetE2EImage(imageutils.Kitten), webserverImage("kitten")},
		{imageutils.GetE2EImage(imageutils.Nautilus), webserverImage("nautilus")},
	}
}

// Build writes one OCI image-layout archive per image into dir and returns
// the image names mapped to the archives' paths.
func Build(dir string, bins Binaries) (map[string]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create image dir: %w", err)
	}
	tars := make(map[string]string)
	for _, r := range recipes() {
		img, err := r.build(bins)
		if err != nil {
			return nil, fmt.Errorf("build image %s: %w", r.name, err)
		}
		path := filepath.Join(dir, archiveName(r.name))
		if err := img.writeLayout(r.name, path); err != nil {
			return nil, fmt.Errorf("write image %s: %w", r.name, err)
		}
		tars[r.name] = path
	}
	return tars, nil
}

// archiveName turns "registry.k8s.io/e2e-test-images/agnhost:2.66.1" into
// "agnhost_2.66.1.tar".
func archiveName(name string) string {
	return strings.ReplaceAll(name[strings.LastIndex(name, "/")+1:], ":", "_") + ".tar"
}

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// file is one entry of an image's single layer.
type file struct {
	name string // path in the rootfs, without leading slash
	mode int64
	data []byte
	link string // symlink target; the entry is a symlink when set
	dir  bool
}

type image struct {
	files  []file
	config ocispec.ImageConfig
}

// busyboxFiles is a root filesystem of busybox and its applets, with the
// users and groups upstream's agnhost has (the SupplementalGroups tests
// look for user-defined-in-image, uid 1000, in group-defined-in-image).
func busyboxFiles(b Binaries) ([]file, error) {
	bin, err := readStatic(b.Busybox)
	if err != nil {
		return nil, fmt.Errorf("busybox (apt-get install busybox-static): %w", err)
	}
	out, err := exec.Command(b.Busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("list busybox applets: %w", err)
	}
	files := []file{
		{name: "bin", mode: 0o755, dir: true},
		{name: "bin/busybox", mode: 0o755, data: bin},
		{name: "etc", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/bin/sh\n" +
			"user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nuser-defined-in-image:x:1000:\n" +
			"group-defined-in-image:x:50000:user-defined-in-image\nnobody:x:65534:\n")},
		{name: "root", mode: 0o700, dir: true},
		{name: "tmp", mode: 0o1777, dir: true},
		{name: "usr", mode: 0o755, dir: true},
		{name: "usr/local", mode: 0o755, dir: true},
		{name: "usr/local/bin", mode: 0o755, dir: true},
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		files = append(files, file{name: "bin/" + applet, mode: 0o777, link: "busybox"})
	}
	return files, nil
}

func busyboxImage(b Binaries) (image, error) {
	files, err := busyboxFiles(b)
	return image{files: files, config: ocispec.ImageConfig{Cmd: []string{"sh"}, Env: []string{defaultPath}}}, err
}

// nonRootImage is upstream's nonroot: busybox whose user is 1234.
func nonRootImage(b Binaries) (image, error) {
	img, err := busyboxImage(b)
	img.config.User = "1234"
	return img, err
}

func nonewprivsImage(b Binaries) (image, error) {
	img, err := busyboxImage(b)
	if err != nil {
		return img, err
	}
	bin, err := readStatic(b.Nonewprivs)
	if err != nil {
		return img, fmt.Errorf("nonewprivs: %w", err)
	}
	// Setuid: the test checks that no_new_privs keeps it from raising the uid.
	img.files = append(img.files, file{name: "usr/local/bin/nnp", mode: 0o4755, data: bin})
	img.config.Cmd = []string{"nnp"}
	return img, nil
}

func pauseImage(b Binaries) (image, error) {
	bin, err := readStatic(b.Pause)
	if err != nil {
		return image{}, fmt.Errorf("pause: %w", err)
	}
	return image{
		files:  []file{{name: "pause", mode: 0o755, data: bin}},
		config: ocispec.ImageConfig{Entrypoint: []string{"/pause"}, Env: []string{defaultPath}},
	}, nil
}

// agnhostImage follows upstream's Dockerfile: /agnhost (and /agnhost-2,
// which the entrypoint tests name), /uploads for netexec, porter's
// certificate, entrypoint agnhost, command pause.
func agnhostImage(b Binaries) (image, error) {
	files, err := busyboxFiles(b)
	if err != nil {
		return image{}, err
	}
	bin, err := readStatic(b.Agnhost)
	if err != nil {
		return image{}, fmt.Errorf("agnhost: %w", err)
	}
	files = append(files,
		file{name: "agnhost", mode: 0o755, data: bin},
		file{name: "agnhost-2", mode: 0o777, link: "agnhost"},
		file{name: "uploads", mode: 0o755, dir: true},
	)
	for _, name := range []string{"localhost.crt", "localhost.key"} {
		data, err := os.ReadFile(filepath.Join(b.KubeSrc, "test/images/agnhost/porter", name))
		if err != nil {
			return image{}, fmt.Errorf("porter's %s: %w", name, err)
		}
		files = append(files, file{name: name, mode: 0o644, data: data})
	}
	return image{files: files, config: ocispec.ImageConfig{
		Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"}, Env: []string{defaultPath},
		ExposedPorts: exposed(80, 8080, 8081, 9376, 5000),
	}}, nil
}

// webserverImage is kitten or nautilus: agnhost serving its picture with
// test-webserver on port 80.
func webserverImage(name string) func(Binaries) (image, error) {
	return func(b Binaries) (image, error) {
		img, err := agnhostImage(b)
		if err != nil {
			return img, err
		}
		for _, f := range []string{name + ".jpg", "data.json"} {
			data, err := os.ReadFile(filepath.Join(b.KubeSrc, "test/images", name, "html", f))
			if err != nil {
				return img, fmt.Errorf("%s's %s: %w", name, f, err)
			}
			img.files = append(img.files, file{name: f, mode: 0o644, data: data})
		}
		img.config.Cmd = []string{"test-webserver"}
		return img, nil
	}
}

// nginxImage stands in for nginx: busybox httpd on port 80 with nginx's
// document root and welcome page.
func nginxImage(b Binaries) (image, error) {
	files, err := busyboxFiles(b)
	if err != nil {
		return image{}, err
	}
	files = append(files,
		file{name: "usr/share", mode: 0o755, dir: true},
		file{name: "usr/share/nginx", mode: 0o755, dir: true},
		file{name: "usr/share/nginx/html", mode: 0o755, dir: true},
		file{name: "usr/share/nginx/html/index.html", mode: 0o644,
			data: []byte("<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head>\n<body><h1>Welcome to nginx!</h1></body></html>\n")},
	)
	return image{files: files, config: ocispec.ImageConfig{
		Cmd:          []string{"httpd", "-f", "-p", "80", "-h", "/usr/share/nginx/html"},
		Env:          []string{defaultPath},
		ExposedPorts: exposed(80),
		StopSignal:   "SIGTERM",
	}}, nil
}

func exposed(ports ...int) map[string]struct{} {
	m := make(map[string]struct{}, len(ports))
	for _, p := range ports {
		m[fmt.Sprintf("%d/tcp", p)] = struct{}{}
	}
	return m
}

// readStatic reads a binary and fails if it needs a dynamic loader, which
// the images do not have.
func readStatic(path string) ([]byte, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return nil, fmt.Errorf("%s: parse ELF: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("%s is dynamically linked (build it with CGO_ENABLED=0)", path)
		}
	}
	return bin, nil
}

// epoch is every layer entry's mtime, so that rebuilds are byte-identical.
var epoch = time.Unix(0, 0)

// layer returns the uncompressed layer tar.
func (img image) layer() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range img.files {
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: epoch, Typeflag: tar.TypeReg, Size: int64(len(f.data))}
		switch {
		case f.dir:
			h.Typeflag, h.Name, h.Size = tar.TypeDir, f.name+"/", 0
		case f.link != "":
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, f.link, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.data); err != nil {
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
func (img image) writeLayout(name, path string) error {
	raw, err := img.layer()
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	var gz bytes.Buffer
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
		Config:   img.config,
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
