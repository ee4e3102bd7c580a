package certificates

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"k8s.io/client-go/rest"
)

func TestOptionsValidateNamesTheFlag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{}, ""},
		{Options{SigningCertFile: "ca.crt", SigningKeyFile: "ca.key", Duration: time.Hour}, ""},
		{Options{SigningCertFile: "ca.crt"}, "--cluster-signing-key-file"},
		{Options{SigningKeyFile: "ca.key"}, "--cluster-signing-cert-file"},
		{Options{Duration: -time.Hour}, "--cluster-signing-duration"},
	} {
		err := tc.o.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
	if d := (Options{}).WithDefaults(); d.Duration != 8760*time.Hour {
		t.Errorf("default duration %s, want kube-controller-manager's 8760h", d.Duration)
	}
	if d := (Options{Duration: time.Hour}).WithDefaults(); d.Duration != time.Hour {
		t.Errorf("duration %s, want the 1h given", d.Duration)
	}
}

func TestAddFlagsUsesKubeControllerManagerNames(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--cluster-signing-cert-file=/pki/ca.crt", "--cluster-signing-key-file=/pki/ca.key", "--cluster-signing-duration=720h"},
		{"--cluster-signing-kubelet-client-cert-file=/pki/ca.crt", "--cluster-signing-kubelet-client-key-file=/pki/ca.key", "--cluster-signing-duration=720h"},
	} {
		var o Options
		fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
		o.AddFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if want := (Options{SigningCertFile: "/pki/ca.crt", SigningKeyFile: "/pki/ca.key", Duration: 720 * time.Hour}); o != want {
			t.Errorf("%v: %+v, want %+v", args, o, want)
		}
	}
}

func TestRunRefusesBadSigningFiles(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := &rest.Config{Host: "https://127.0.0.1:1"} // never reached
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{SigningCertFile: garbage}, "--cluster-signing-key-file"},
		{Options{SigningCertFile: filepath.Join(dir, "missing.crt"), SigningKeyFile: filepath.Join(dir, "missing.key")}, "kube-apiserver-client-kubelet"},
		{Options{SigningCertFile: garbage, SigningKeyFile: garbage}, "kube-apiserver-client-kubelet"},
	} {
		err := Run(ctx, cfg, tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error naming %q", tc.o, err, tc.want)
		}
	}
}
