package nodeagent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/klog/v2"
)

// FileLabelsAnnotation lists the labels the agent set on its node from
// --node-labels-dir, so that a label whose file line went away is removed,
// also across restarts, and no other label is touched.
const FileLabelsAnnotation = "kplex.io/file-labels"

// readLabelFiles reads every file in dir: one key=value label per line, #
// comments; GPU feature discovery (kplex-deviceplugin) writes them. Bad
// lines are skipped with a log, as node-feature-discovery's local source
// does.
func readLabelFiles(ctx context.Context, dir string) map[string]string {
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return out
	}
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, _ := strings.Cut(line, "=")
			if reserved(k) {
				klog.FromContext(ctx).Info("Skipping a label kplex or Kubernetes owns", "file", e.Name(), "label", k)
				continue
			}
			if len(validation.IsQualifiedName(k)) > 0 || len(validation.IsValidLabelValue(v)) > 0 {
				klog.FromContext(ctx).Info("Skipping invalid label line", "file", e.Name(), "line", line)
				continue
			}
			out[k] = v
		}
		f.Close()
	}
	return out
}

// reserved are the label domains a label file may not set: kplex's own
// (kplex.io/pool decides who may use the node) and Kubernetes'.
func reserved(key string) bool {
	domain, _, ok := strings.Cut(key, "/")
	if !ok {
		return false
	}
	for _, d := range []string{"kplex.io", "kubernetes.io", "k8s.io"} {
		if domain == d || strings.HasSuffix(domain, "."+d) {
			return true
		}
	}
	return false
}

// syncFileLabels brings the node's labels from --node-labels-dir up to
// date with one patch when they changed.
func (n *nodeStatus) syncFileLabels(ctx context.Context) error {
	if n.cfg.NodeLabelsDir == "" {
		return nil
	}
	want := readLabelFiles(ctx, n.cfg.NodeLabelsDir)
	if n.fileLabels != nil && maps.Equal(want, n.fileLabels) {
		return nil // applied already: no read of the node every heartbeat
	}
	node, err := n.client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil // registered again by the status sync
	}
	if err != nil {
		return fmt.Errorf("reading node %s: %w", n.name, err)
	}
	var had []string
	if v := node.Annotations[FileLabelsAnnotation]; v != "" {
		had = strings.Split(v, ",")
	}
	labels := map[string]*string{}
	for _, k := range had {
		if _, ok := want[k]; !ok {
			labels[k] = nil // gone from the files: remove
		}
	}
	keys := make([]string, 0, len(want))
	for k, v := range want {
		keys = append(keys, k)
		if cur, ok := node.Labels[k]; !ok || cur != v {
			labels[k] = &v
		}
	}
	sort.Strings(keys)
	applied := strings.Join(keys, ",")
	if len(labels) == 0 && applied == node.Annotations[FileLabelsAnnotation] {
		n.fileLabels = want
		return nil
	}
	annotation := &applied
	if applied == "" {
		annotation = nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"labels":      labels,
		"annotations": map[string]*string{FileLabelsAnnotation: annotation},
	}})
	if err != nil {
		return err
	}
	if _, err := n.client.CoreV1().Nodes().Patch(ctx, n.name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("labelling node %s from %s: %w", n.name, n.cfg.NodeLabelsDir, err)
	}
	n.fileLabels = want
	return nil
}
