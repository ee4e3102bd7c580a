package partition

import (
	"fmt"
	"strings"
)

// Key inserts tenantName into key right after resourcePrefix:
// Key("/configmaps", "acme", "/configmaps/ns/cm") is "/configmaps/acme/ns/cm".
// A key outside resourcePrefix is an error: the tenant must never be guessed.
func Key(resourcePrefix, tenantName, key string) (string, error) {
	prefix := strings.TrimSuffix(resourcePrefix, "/")
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok || (rest != "" && rest[0] != '/') {
		return "", fmt.Errorf("storage key %q is outside resource prefix %q", key, prefix)
	}
	return prefix + "/" + tenantName + rest, nil
}
