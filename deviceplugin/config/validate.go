package config

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Validate checks c; its errors name the offending field the way
// Kubernetes does, e.g.
// sharing.timeSlicing.resources[0].replicas: Invalid value: 0: must be at least 1.
func (c *Config) Validate() error {
	var errs field.ErrorList
	if c.Version != Version {
		errs = append(errs, field.NotSupported(field.NewPath("version"), c.Version, []string{Version}))
	}
	errs = append(errs, validateFlags(&c.Flags, field.NewPath("flags"))...)
	errs = append(errs, validateSharing(&c.Sharing, field.NewPath("sharing"))...)
	return errs.ToAggregate()
}

func validateFlags(f *Flags, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	oneOf := func(p *field.Path, v string, supported ...string) {
		if !sets.New(supported...).Has(v) {
			errs = append(errs, field.NotSupported(p, v, supported))
		}
	}
	oneOf(path.Child("migStrategy"), f.MigStrategy, MigStrategyNone)
	if f.DeviceDiscoveryStrategy != "" {
		oneOf(path.Child("deviceDiscoveryStrategy"), f.DeviceDiscoveryStrategy, "auto", "nvml")
	}
	if f.GDSEnabled {
		errs = append(errs, field.Forbidden(path.Child("gdsEnabled"), "GPUDirect Storage is not supported by kplex-deviceplugin"))
	}
	if f.MOFEDEnabled {
		errs = append(errs, field.Forbidden(path.Child("mofedEnabled"), "MOFED devices are not supported by kplex-deviceplugin"))
	}
	pp := path.Child("plugin")
	if len(f.Plugin.DeviceListStrategy) == 0 {
		errs = append(errs, field.Required(pp.Child("deviceListStrategy"), ""))
	}
	for _, s := range f.Plugin.DeviceListStrategy {
		oneOf(pp.Child("deviceListStrategy"), s, DeviceListStrategyEnvvar)
	}
	oneOf(pp.Child("deviceIDStrategy"), f.Plugin.DeviceIDStrategy, DeviceIDStrategyUUID)
	return errs
}

func validateSharing(s *Sharing, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.MPS != nil {
		errs = append(errs, field.Forbidden(path.Child("mps"), "MPS sharing is not supported by kplex-deviceplugin; use sharing.timeSlicing"))
	}
	tp := path.Child("timeSlicing", "resources")
	seen := sets.New[string]()
	for i, r := range s.TimeSlicing.Resources {
		rp := tp.Index(i)
		switch {
		case r.Name == "":
			errs = append(errs, field.Required(rp.Child("name"), ""))
		case r.Name != GPUResource:
			errs = append(errs, field.NotSupported(rp.Child("name"), r.Name, []string{GPUResource}))
		case seen.Has(r.Name):
			errs = append(errs, field.Duplicate(rp.Child("name"), r.Name))
		}
		seen.Insert(r.Name)
		if r.Devices != "" && r.Devices != DevicesAll {
			errs = append(errs, field.NotSupported(rp.Child("devices"), r.Devices, []string{DevicesAll}))
		}
		// NVIDIA requires at least 2; kplex also takes 1, meaning not shared,
		// so that a config can switch sharing off without deleting the entry.
		if r.Replicas < 1 {
			errs = append(errs, field.Invalid(rp.Child("replicas"), r.Replicas, "must be at least 1"))
		}
		if r.Rename != "" {
			errs = append(errs, validateRename(rp.Child("rename"), r)...)
		}
	}
	return errs
}

func validateRename(path *field.Path, r ReplicatedResource) field.ErrorList {
	var errs field.ErrorList
	if r.Replicas == 1 {
		errs = append(errs, field.Invalid(path, r.Rename, "must not be set when replicas is 1 (the resource is not shared)"))
	}
	if !strings.HasPrefix(r.Rename, ResourcePrefix) {
		errs = append(errs, field.Invalid(path, r.Rename, fmt.Sprintf("must be in the %s domain", strings.TrimSuffix(ResourcePrefix, "/"))))
	}
	for _, msg := range validation.IsQualifiedName(r.Rename) {
		errs = append(errs, field.Invalid(path, r.Rename, msg))
	}
	return errs
}
