package tenantauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
)

// ExtraTenant is the user-info extra key naming the tenant an identity is
// confined to.
const ExtraTenant = "kplex.io/tenant"

// ExtraDeleted marks the identity of a genuine token whose tenant is gone.
const ExtraDeleted = "kplex.io/tenant-deleted"

const tokenPrefix = "kplex-tenant."

// Tokens issues and verifies tenant admin tokens.
type Tokens struct {
	key []byte
}

// NewTokens returns Tokens keyed by secret.
func NewTokens(secret []byte) *Tokens { return &Tokens{key: secret} }

// Issue returns the admin token of tenant name with the given UID:
// kplex-tenant.<name>.<uid>.<mac>.
func (t *Tokens) Issue(name, uid string) string {
	return tokenPrefix + name + "." + uid + "." + t.mac(name, uid)
}

func (t *Tokens) mac(name, uid string) string {
	h := hmac.New(sha256.New, t.key)
	fmt.Fprintf(h, "%s/%s", name, uid)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// UIDs tells the UID of a serving tenant.
type UIDs interface {
	// UID returns the UID of tenant name, and false if it is not serving.
	UID(name string) (string, bool)
}

// Authenticator returns a token authenticator for tenant admin tokens. A
// genuine token of a tenant that no longer exists (deleted, or recreated
// under a new UID) authenticates as DeletedUser: it may learn that its
// tenant is gone, and nothing else.
func (t *Tokens) Authenticator(tenants UIDs) authenticator.Token {
	return authenticator.TokenFunc(func(ctx context.Context, token string) (*authenticator.Response, bool, error) {
		rest, ok := strings.CutPrefix(token, tokenPrefix)
		if !ok {
			return nil, false, nil
		}
		parts := strings.Split(rest, ".")
		if len(parts) != 3 {
			return nil, false, nil
		}
		name, uid, mac := parts[0], parts[1], parts[2]
		if !hmac.Equal([]byte(mac), []byte(t.mac(name, uid))) {
			return nil, false, nil
		}
		if current, serving := tenants.UID(name); !serving || current != uid {
			return &authenticator.Response{User: DeletedUser(name)}, true, nil
		}
		return &authenticator.Response{User: AdminUser(name)}, true, nil
	})
}

// AdminsGroup holds every tenant's admin. Each tenant binds it to
// cluster-admin (AdminsBinding) in its own policy, and the authorizer
// confines each member to its own tenant. It is deliberately not system:masters: that group is exempt from
// API Priority and Fairness, where a flooding tenant must queue as its own flow.
const AdminsGroup = "kplex:tenant-admins"

// AdminUser is the identity of tenant name's admin: all-powerful inside the
// tenant, and confined to it by the tenant extra.
func AdminUser(name string) user.Info {
	return &user.DefaultInfo{
		Name:   "kplex:tenant:" + name + ":admin",
		Groups: []string{AdminsGroup, user.AllAuthenticated},
		Extra:  map[string][]string{ExtraTenant: {name}},
	}
}

// DeletedUser is the identity of a genuine token of a tenant that is gone.
func DeletedUser(name string) user.Info {
	return &user.DefaultInfo{
		Name:  "kplex:tenant:" + name + ":deleted",
		Extra: map[string][]string{ExtraTenant: {name}, ExtraDeleted: {"true"}},
	}
}

// Deleted reports whether u holds the token of a tenant that is gone.
func Deleted(u user.Info) bool {
	return u != nil && len(u.GetExtra()[ExtraDeleted]) > 0
}

// TenantOf returns the tenant an identity is confined to, or "" for an
// identity of the management plane.
func TenantOf(u user.Info) string {
	if u == nil {
		return ""
	}
	if names := u.GetExtra()[ExtraTenant]; len(names) > 0 {
		return names[0]
	}
	return ""
}
