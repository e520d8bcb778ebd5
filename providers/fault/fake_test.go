package fault

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"testing"
)

func TestTally_DuplicatesSortedWithCounts(t *testing.T) {
	tl := Tally{}
	if d := tl.Duplicates(); d == nil || len(d) != 0 {
		t.Fatalf("Duplicates of nothing = %#v, want an empty list", d)
	}
	for _, k := range []string{"b", "a", "b", "c", "a", "b"} {
		tl.Add(k)
	}
	if d, want := tl.Duplicates(), []string{"a (2)", "b (3)"}; !slices.Equal(d, want) {
		t.Fatalf("Duplicates = %v, want %v", d, want)
	}
}

func TestUUID_IsVersion4(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := UUID(), UUID()
	if !re.MatchString(a) || a == b {
		t.Fatalf("UUID() = %q, %q", a, b)
	}
	if h := RandomHex(8); len(h) != 16 {
		t.Fatalf("RandomHex(8) = %q", h)
	}
}

func TestWriteJSON_KeepsAContentTypeTheHandlerSet(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteJSON(rec, http.StatusCreated, map[string]int{"id": 1})
	if rec.Code != http.StatusCreated || rec.Header().Get("Content-Type") != "application/json" || rec.Body.String() != "{\"id\":1}\n" {
		t.Fatalf("answer %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
	}
	rec = httptest.NewRecorder()
	rec.Header().Set("Content-Type", "application/json; charset=utf-8")
	WriteJSON(rec, http.StatusOK, "x")
	if got := rec.Header().Get("Content-Type"); got != "application/json; charset=utf-8" {
		t.Fatalf("Content-Type = %q", got)
	}
}
