package plan

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// bench100k is one entry of 100,000 rows with the usual shape of an item: a few
// constant fields from the defaults, row values in the name, a path, a query and a
// body, a var, a secret and a list.
const bench100k = `version: 1
name: bench
vars: {domain: example.com}
endpoints:
  api: {kind: http, url: https://api.example.com, auth: {type: bearer, token: "${env.X}"}}
http:
  defaults:
    endpoint: api
    method: POST
    headers: {X-Plan: bench}
  items:
    - name: store-${row.value}
      foreach: {range: {from: 1, to: 100000, format: "%06d"}}
      path: /systems/${row.value}
      query: {index: "${row.index}"}
      body:
        name: store ${row.value}
        email: ops+${row.value}@${var.domain}
        port: 7001
        tags: [retail, eu]
        token: ${env.X}
      expect: [200, 201]
`

func BenchmarkLoad_100k(b *testing.B) {
	p := filepath.Join(b.TempDir(), "bench.yaml")
	if err := os.WriteFile(p, []byte(bench100k), 0o600); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var pl *Plan
	for b.Loop() {
		var err error
		pl, err = Load(p, opts())
		if err != nil {
			b.Fatal(err)
		}
		if len(pl.Items) != 100000 {
			b.Fatalf("items = %d", len(pl.Items))
		}
	}
	b.StopTimer()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	b.ReportMetric(float64(m.HeapInuse)/(1<<20), "heap-MB")
	runtime.KeepAlive(pl)
}

// BenchmarkDecodeStrict_Item: what a provider pays per item to decode its spec.
func BenchmarkDecodeStrict_Item(b *testing.B) {
	pl, err := Parse("bench.yaml", []byte(bench100k), opts())
	if err != nil {
		b.Fatal(err)
	}
	type spec struct {
		Endpoint string            `yaml:"endpoint"`
		Method   string            `yaml:"method"`
		Path     string            `yaml:"path"`
		Query    map[string]string `yaml:"query"`
		Headers  map[string]string `yaml:"headers"`
		Body     any               `yaml:"body"`
		Expect   []int             `yaml:"expect"`
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		var s spec
		if err := DecodeStrict(pl.File, pl.Items[i%len(pl.Items)].Fields(), &s); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkLoad_50kExplicitEntries: a generated plan that lists every item (no
// foreach), so the per-entry work dominates.
func BenchmarkLoad_50kExplicitEntries(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("version: 1\nname: explicit\nvars: {domain: example.com}\nhttp:\n  defaults: {endpoint: api, method: POST}\n  items:\n")
	for i := 0; i < 50_000; i++ {
		fmt.Fprintf(&sb, "    - name: store-%d\n      path: /systems/%d\n      body: {name: store %d, email: \"ops+%d@${var.domain}\", tags: [a, b]}\n", i, i, i, i)
	}
	p := filepath.Join(b.TempDir(), "explicit.yaml")
	if err := os.WriteFile(p, []byte(sb.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(sb.Len())/(1<<20), "plan-MB")
	b.ReportAllocs()
	for b.Loop() {
		pl, err := Load(p, opts())
		if err != nil {
			b.Fatal(err)
		}
		if len(pl.Items) != 50_000 {
			b.Fatalf("items = %d", len(pl.Items))
		}
	}
}
