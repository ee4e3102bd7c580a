package gpu

import (
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

func TestBusIDs(t *testing.T) {
	p := pciInfo("00000000:1B:00.0", 0x1b, 0)
	if got := busID(p); got != "00000000:1B:00.0" {
		t.Errorf("busID = %q", got)
	}
	if got := busID(nvml.PciInfo{}); got != "" {
		t.Errorf("busID of nothing = %q", got)
	}
	for in, want := range map[string]string{
		"00000000:1B:00.0": "0000:1b:00.0",
		"0000:c3:00.0":     "0000:c3:00.0",
		"00000001:DF:00.0": "0001:df:00.0",
		"nonsense":         "",
	} {
		if got := sysfsBusID(in); got != want {
			t.Errorf("sysfsBusID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSimUUID(t *testing.T) {
	// Fixed forever: nodes and tests may remember them.
	if got := simUUID("h100", 0); got != simUUID("h100", 0) || got == simUUID("h100", 1) || got == simUUID("a100", 0) {
		t.Errorf("simUUID not stable or not distinct: %s", got)
	}
}
