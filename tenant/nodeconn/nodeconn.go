// Package nodeconn tells a node agent which tenant a request from the
// apiserver is for.
//
// The apiserver reaches a node's agent for `kubectl logs` and `kubectl
// exec` with upstream's kubelet client, whose URLs name a pod by namespace
// and name only: two tenants' default/web-0 can run on one node. So the
// apiserver addresses the node, for a tenant's request, by a per-tenant host
// name (Hostname); upstream's transport then never shares a connection
// between tenants, as it pools connections by host. Its dialer (Dialer)
// connects to the real address and, before TLS begins, writes one line
// naming the tenant; the agent's listener (NewListener) reads it. The
// agent serves only clients with the apiserver's certificate, so only the
// apiserver can name a tenant there.
package nodeconn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/kplex/kplex/tenant"
)

// ClientName is the common name of the apiserver's client certificate
// toward node agents; an agent serves no one else.
const ClientName = "kube-apiserver-kubelet-client"

// marker separates the tenant from the real host in a per-tenant host name.
const marker = ".kplex-tenant."

const preamble = "KPLEX-TENANT "

// Hostname is the host name under which the apiserver reaches host for
// tenantName's requests.
func Hostname(tenantName, host string) string { return tenantName + marker + host }

// Parse splits a per-tenant host name; ok is false for any other host.
func Parse(host string) (tenantName, realHost string, ok bool) {
	t, rest, found := strings.Cut(host, marker)
	if !found || tenant.ValidateName(t) != nil {
		return "", host, false
	}
	return t, rest, true
}

// DialFunc dials like net.Dialer.DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Dialer dials the real address of a per-tenant host name with base (a
// plain net.Dialer when nil) and names the tenant on the new connection;
// other hosts are the management plane's.
func Dialer(base DialFunc) DialFunc {
	if base == nil {
		base = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		tenantName, realHost, ok := Parse(host)
		if !ok {
			tenantName = tenant.Root
		}
		conn, err := base(ctx, network, net.JoinHostPort(realHost, port))
		if err != nil {
			return nil, err
		}
		if _, err := fmt.Fprintf(conn, "%s%s\n", preamble, tenantName); err != nil {
			conn.Close()
			return nil, fmt.Errorf("naming the tenant to the node agent at %s: %w", addr, err)
		}
		return conn, nil
	}
}

// Conn is a connection accepted by NewListener's listener. Its tenant is
// known once the first byte after the preamble has been read, which TLS
// does before any request is served.
type Conn struct {
	net.Conn
	once   sync.Once
	r      *bufio.Reader
	tenant string
	err    error
}

// Tenant is the tenant the apiserver named on the connection.
func (c *Conn) Tenant() string { return c.tenant }

func (c *Conn) Read(p []byte) (int, error) {
	c.once.Do(c.readPreamble)
	if c.err != nil {
		return 0, c.err
	}
	return c.r.Read(p)
}

var errPreamble = errors.New("connection does not name a tenant")

func (c *Conn) readPreamble() {
	_ = c.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.Conn.SetReadDeadline(time.Time{})
	c.r = bufio.NewReaderSize(c.Conn, 4096)
	line, err := c.r.ReadSlice('\n')
	if err != nil || len(line) > 128 {
		c.err = errPreamble
		return
	}
	name, ok := strings.CutPrefix(strings.TrimSuffix(string(line), "\n"), preamble)
	if !ok || (name != tenant.Root && tenant.ValidateName(name) != nil) {
		c.err = errPreamble
		return
	}
	c.tenant = name
}

type listener struct{ net.Listener }

// NewListener returns a listener whose connections read the tenant line
// Dialer writes before anything else.
func NewListener(l net.Listener) net.Listener { return listener{l} }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &Conn{Conn: c}, nil
}
