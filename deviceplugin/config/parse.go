package config

import (
	"fmt"
	"os"

	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Load reads and validates the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading device plugin config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("device plugin config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a YAML or JSON config over Default, strictly: unknown and
// duplicate fields are errors, and so is anything Validate refuses.
// Resource names without a domain get nvidia.com/, as in NVIDIA's plugin.
func Parse(data []byte) (*Config, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("parsing YAML: %w", err)
	}
	c := Default()
	// Decoding over the defaults keeps them for fields the file omits.
	strict, err := kjson.UnmarshalStrict(js, c)
	if err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	if len(strict) > 0 {
		// Same wording as the apiserver's strict field validation, e.g.
		// strict decoding error: unknown field "flags.foo".
		return nil, fmt.Errorf("strict decoding error: %w", utilerrors.NewAggregate(strict))
	}
	if c.Version == "" {
		c.Version = Version // NVIDIA's plugin defaults it too
	}
	c.normalize()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) normalize() {
	for _, rs := range []*ReplicatedResources{&c.Sharing.TimeSlicing, c.Sharing.MPS} {
		if rs == nil {
			continue
		}
		for i := range rs.Resources {
			r := &rs.Resources[i]
			r.Name, r.Rename = qualify(r.Name), qualify(r.Rename)
		}
	}
}
