package main

import (
	"flag"
	"io"
	"strings"
	"testing"
)

// TestFaultFlags_RateLimit: --fault-rate-limit and --fault-rate-burst reach the
// fault config; a negative value is an error naming its flag.
func TestFaultFlags_RateLimit(t *testing.T) {
	parse := func(args ...string) (*faultFlags, error) {
		var f faultFlags
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f.register(fs)
		return &f, fs.Parse(args)
	}
	f, err := parse("--fault-rate-limit", "50", "--fault-rate-burst", "10")
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.config()
	if err != nil || c.RateLimit != 50 || c.RateBurst != 10 || c.Off() {
		t.Fatalf("config %+v, %v", c, err)
	}
	if d := describeFaults(c); !strings.Contains(d, "rate-limit=50/s") {
		t.Errorf("describe: %s", d)
	}
	for _, bad := range [][]string{{"--fault-rate-limit", "-1"}, {"--fault-rate-burst", "-3"}} {
		f, err := parse(bad...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.config(); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%v: %v, want an error naming %s", bad, err, bad[0])
		}
	}
}
