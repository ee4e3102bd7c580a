package gpu

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// DisableHealthChecksEnv is the environment variable NVIDIA's device
// plugin reads, with the same values: "all" (or "xids") turns health
// checking off; a list of Xids (comma- or space-separated) adds them to
// the ignored ones.
const DisableHealthChecksEnv = "DP_DISABLE_HEALTHCHECKS"

// defaultIgnoredXids are the Xids NVIDIA's device plugin does not count as
// device faults: they are caused by the application (13 graphics engine
// exception, 31 GPU memory page fault, 43 GPU stopped processing, 45
// preemptive cleanup, 68 video processor exception, 109 context switch
// timeout).
var defaultIgnoredXids = []uint64{13, 31, 43, 45, 68, 109}

// DefaultIgnoredXids returns the Xids ignored by default.
func DefaultIgnoredXids() []uint64 { return slices.Clone(defaultIgnoredXids) }

// HealthChecks says which health checks WatchHealth runs.
type HealthChecks struct {
	// Disabled turns health checking off: WatchHealth returns at once.
	Disabled bool
	// IgnoredXids are the Xids that do not make a device unhealthy.
	IgnoredXids map[uint64]bool
}

// DefaultHealthChecks checks health, ignoring DefaultIgnoredXids.
func DefaultHealthChecks() HealthChecks {
	h := HealthChecks{IgnoredXids: map[uint64]bool{}}
	for _, x := range defaultIgnoredXids {
		h.IgnoredXids[x] = true
	}
	return h
}

// Critical says whether an Xid makes a device unhealthy.
func (h HealthChecks) Critical(xid uint64) bool { return !h.IgnoredXids[xid] }

// ParseHealthChecks reads a DP_DISABLE_HEALTHCHECKS value: "" keeps the
// defaults, "all" or "xids" disable health checks, otherwise a comma- or
// space-separated list of Xids to ignore besides the default ones. An
// entry that is not a number is an error.
func ParseHealthChecks(v string) (HealthChecks, error) {
	h := DefaultHealthChecks()
	fields := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	for _, f := range fields {
		switch strings.ToLower(f) {
		case "all", "xids":
			h.Disabled = true
			continue
		}
		x, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return DefaultHealthChecks(), fmt.Errorf("%s: %q is neither \"all\", \"xids\" nor an Xid", DisableHealthChecksEnv, f)
		}
		h.IgnoredXids[x] = true
	}
	return h, nil
}

// HealthChecksFromEnv reads DP_DISABLE_HEALTHCHECKS.
func HealthChecksFromEnv() (HealthChecks, error) {
	return ParseHealthChecks(os.Getenv(DisableHealthChecksEnv))
}
