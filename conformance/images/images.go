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
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	imageutils "k8s.io/kubernetes/test/utils/image"

	testimages "github.com/kplex/kplex/test/images"
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
	build func(Binaries) (Image, error)
}

func recipes() []recipe {
	agnhost := func(b Binaries) (Image, error) { return agnhostImage(b) }
	nginx := func(b Binaries) (Image, error) { return nginxImage(b) }
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
		if err := img.WriteLayout(r.name, path); err != nil {
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

// File and Image are kplex's own test images' (test/images): the suite's
// images are written by the same OCI layout writer.
type (
	File  = testimages.File
	Image = testimages.Image
)

// busyboxFiles is a root filesystem of busybox and its applets, with the
// users and groups upstream's agnhost has (the SupplementalGroups tests
// look for user-defined-in-image, uid 1000, in group-defined-in-image).
func busyboxFiles(b Binaries) ([]File, error) {
	bin, err := readStatic(b.Busybox)
	if err != nil {
		return nil, fmt.Errorf("busybox (apt-get install busybox-static): %w", err)
	}
	out, err := exec.Command(b.Busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("list busybox applets: %w", err)
	}
	files := []File{
		{Name: "bin", Mode: 0o755, Dir: true},
		{Name: "bin/busybox", Mode: 0o755, Data: bin},
		{Name: "etc", Mode: 0o755, Dir: true},
		{Name: "etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/bin/sh\n" +
			"user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		{Name: "etc/group", Mode: 0o644, Data: []byte("root:x:0:\nuser-defined-in-image:x:1000:\n" +
			"group-defined-in-image:x:50000:user-defined-in-image\nnobody:x:65534:\n")},
		{Name: "root", Mode: 0o700, Dir: true},
		{Name: "tmp", Mode: 0o1777, Dir: true},
		{Name: "usr", Mode: 0o755, Dir: true},
		{Name: "usr/local", Mode: 0o755, Dir: true},
		{Name: "usr/local/bin", Mode: 0o755, Dir: true},
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		files = append(files, File{Name: "bin/" + applet, Mode: 0o777, Link: "busybox"})
	}
	return files, nil
}

func busyboxImage(b Binaries) (Image, error) {
	files, err := busyboxFiles(b)
	return Image{Files: files, Config: ocispec.ImageConfig{Cmd: []string{"sh"}, Env: []string{defaultPath}}}, err
}

// nonRootImage is upstream's nonroot: busybox whose user is 1234.
func nonRootImage(b Binaries) (Image, error) {
	img, err := busyboxImage(b)
	img.Config.User = "1234"
	return img, err
}

func nonewprivsImage(b Binaries) (Image, error) {
	img, err := busyboxImage(b)
	if err != nil {
		return img, err
	}
	bin, err := readStatic(b.Nonewprivs)
	if err != nil {
		return img, fmt.Errorf("nonewprivs: %w", err)
	}
	// Setuid: the test checks that no_new_privs keeps it from raising the uid.
	img.Files = append(img.Files, File{Name: "usr/local/bin/nnp", Mode: 0o4755, Data: bin})
	img.Config.Cmd = []string{"nnp"}
	return img, nil
}

func pauseImage(b Binaries) (Image, error) {
	bin, err := readStatic(b.Pause)
	if err != nil {
		return Image{}, fmt.Errorf("pause: %w", err)
	}
	return Image{
		Files:  []File{{Name: "pause", Mode: 0o755, Data: bin}},
		Config: ocispec.ImageConfig{Entrypoint: []string{"/pause"}, Env: []string{defaultPath}},
	}, nil
}

// agnhostImage follows upstream's Dockerfile: /agnhost (and /agnhost-2,
// which the entrypoint tests name), /uploads for netexec, porter's
// certificate, entrypoint agnhost, command pause.
func agnhostImage(b Binaries) (Image, error) {
	files, err := busyboxFiles(b)
	if err != nil {
		return Image{}, err
	}
	bin, err := readStatic(b.Agnhost)
	if err != nil {
		return Image{}, fmt.Errorf("agnhost: %w", err)
	}
	files = append(files,
		File{Name: "agnhost", Mode: 0o755, Data: bin},
		File{Name: "agnhost-2", Mode: 0o777, Link: "agnhost"},
		File{Name: "uploads", Mode: 0o755, Dir: true},
	)
	for _, name := range []string{"localhost.crt", "localhost.key"} {
		data, err := os.ReadFile(filepath.Join(b.KubeSrc, "test/images/agnhost/porter", name))
		if err != nil {
			return Image{}, fmt.Errorf("porter's %s: %w", name, err)
		}
		files = append(files, File{Name: name, Mode: 0o644, Data: data})
	}
	return Image{Files: files, Config: ocispec.ImageConfig{
		Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"}, Env: []string{defaultPath},
		ExposedPorts: exposed(80, 8080, 8081, 9376, 5000),
	}}, nil
}

// webserverImage is kitten or nautilus: agnhost serving its picture with
// test-webserver on port 80.
func webserverImage(name string) func(Binaries) (Image, error) {
	return func(b Binaries) (Image, error) {
		img, err := agnhostImage(b)
		if err != nil {
			return img, err
		}
		for _, f := range []string{name + ".jpg", "data.json"} {
			data, err := os.ReadFile(filepath.Join(b.KubeSrc, "test/images", name, "html", f))
			if err != nil {
				return img, fmt.Errorf("%s's %s: %w", name, f, err)
			}
			img.Files = append(img.Files, File{Name: f, Mode: 0o644, Data: data})
		}
		img.Config.Cmd = []string{"test-webserver"}
		return img, nil
	}
}

// nginxImage stands in for nginx: busybox httpd on port 80 with nginx's
// document root and welcome page.
func nginxImage(b Binaries) (Image, error) {
	files, err := busyboxFiles(b)
	if err != nil {
		return Image{}, err
	}
	files = append(files,
		File{Name: "usr/share", Mode: 0o755, Dir: true},
		File{Name: "usr/share/nginx", Mode: 0o755, Dir: true},
		File{Name: "usr/share/nginx/html", Mode: 0o755, Dir: true},
		File{Name: "usr/share/nginx/html/index.html", Mode: 0o644,
			Data: []byte("<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head>\n<body><h1>Welcome to nginx!</h1></body></html>\n")},
	)
	return Image{Files: files, Config: ocispec.ImageConfig{
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
