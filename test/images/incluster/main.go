// Command incluster is an unmodified in-cluster client, as every operator
// and Helm hook is: rest.InClusterConfig and client-go, nothing of kplex.
// It lists its namespace's pods, creates a ConfigMap, and reports what the
// API answered to a request naming another tenant's path; one line each,
// for the test that runs it to read.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

func main() {
	other := flag.String("other-tenant", "", "a tenant whose path to try")
	name := flag.String("configmap", "from-incluster", "the ConfigMap to create")
	flag.Parse()
	if err := run(*other, *name); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
}

func run(other, name string) error {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if err != nil {
		return err
	}
	ns := strings.TrimSpace(string(raw))
	ctx := context.Background()
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing pods: %w", err)
	}
	var names []string
	for _, p := range pods.Items {
		names = append(names, p.Name)
	}
	fmt.Printf("pods: %s\n", strings.Join(names, ","))
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"from": "incluster"}}
	if _, err := client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating configmap: %w", err)
	}
	fmt.Printf("created: %s\n", name)
	if other != "" {
		err := client.CoreV1().RESTClient().Get().AbsPath("/clusters", other, "api/v1/namespaces", ns, "configmaps").Do(ctx).Error()
		code := 200
		if s, ok := err.(apierrors.APIStatus); ok {
			code = int(s.Status().Code)
		} else if err != nil {
			code = -1
		}
		fmt.Printf("other tenant: %d\n", code)
	}
	return nil
}
