// Package kubeconfig writes kplex contexts into a user's kubeconfig the way
// kind does: merged into the file (or the first file of $KUBECONFIG), one
// context, cluster and user per tenant, all named kplex-<tenant>.
package kubeconfig
