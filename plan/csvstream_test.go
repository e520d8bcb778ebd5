package plan

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// csvPlanWith writes a plan over rows.csv holding text and loads it.
func csvPlanWith(t *testing.T, text string) error {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rows.csv"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "p.yaml")
	plan := "version: 1\nname: s\nhttp:\n  items:\n    - name: r-${row.id}\n      foreach: {csv: rows.csv}\n"
	if err := os.WriteFile(p, []byte(plan), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p, opts())
	return err
}

// The CSV is streamed in 64 KiB reads: a character split by a read boundary is
// valid, and a bad byte deep in the file is reported at its line and column.
func TestLoad_CSVStreamedEncodingChecks(t *testing.T) {
	var b strings.Builder
	b.WriteString("\xef\xbb\xbfid,name\n")
	for i := 0; b.Len() < 200_000; i++ {
		b.WriteString("x")
		b.WriteString(strings.Repeat("é", i%7)) // two bytes each: some straddle a boundary
		b.WriteString(",ü€\n")
	}
	good := b.String()
	lines := strings.Count(good, "\n")
	t.Run("multibyte across reads is valid", func(t *testing.T) {
		err := csvPlanWith(t, good)
		if err != nil && strings.Contains(err.Error(), "UTF") {
			t.Fatalf("valid UTF-8 refused: %v", err)
		}
	})
	t.Run("bad byte deep in the file", func(t *testing.T) {
		err := csvPlanWith(t, good+"xé,a\xe9b\n")
		want := "rows.csv:" + strconv.Itoa(lines+1) + ":5: byte 0xe9 is not UTF-8"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want %q", err, want)
		}
	})
	t.Run("truncated sequence at the end", func(t *testing.T) {
		err := csvPlanWith(t, good+"y,\xe2\x82")
		want := "rows.csv:" + strconv.Itoa(lines+1) + ":3: byte 0xe2 is not UTF-8"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want %q", err, want)
		}
	})
	t.Run("NUL bytes late in the file mean UTF-16", func(t *testing.T) {
		err := csvPlanWith(t, good+"z,\x00\n")
		if err == nil || !strings.Contains(err.Error(), "rows.csv:1:1: the file is UTF-16") || strings.Contains(err.Error(), "row has") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a ragged row before a bad byte: only the encoding is reported", func(t *testing.T) {
		err := csvPlanWith(t, "id,name\n1\n2,\xff\n")
		if err == nil || !strings.Contains(err.Error(), "rows.csv:3:3: byte 0xff is not UTF-8") || strings.Contains(err.Error(), "fields") {
			t.Fatalf("err = %v", err)
		}
	})
}
