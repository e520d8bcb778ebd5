package main

import (
	"flag"
	"io"
	"strings"
	"testing"

	"provision/providers/fault"
)

// --fault-rate-limit switches the fakes' server-side token bucket; negative values
// are refused.
func TestFaultFlags_RateLimit(t *testing.T) {
	parse := func(args ...string) (fault.Config, error) {
		var f faultFlags
		fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f.register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return f.config()
	}
	c, err := parse("--fault-rate-limit", "20", "--fault-rate-burst", "5")
	if err != nil || c.RateLimit != (fault.RateLimit{Rate: 20, Burst: 5}) || c.Off() {
		t.Fatalf("config %+v err %v", c, err)
	}
	if d := describeFaults(c); !strings.Contains(d, "rate-limit=20/s") {
		t.Fatalf("describeFaults: %q", d)
	}
	if _, err := parse("--fault-rate-limit", "-1"); err == nil || !strings.Contains(err.Error(), "--fault-rate-limit") {
		t.Fatalf("negative rate: %v", err)
	}
}
