package fault

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// Helpers the vendor fakes share: answers, identifiers and the duplicate count
// that proves "exactly once".

// WriteJSON answers with status and v as JSON. The Content-Type is
// application/json unless the handler set one.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// UUID returns a random (version 4) UUID in its canonical form.
func UUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// RandomHex returns n random bytes in hex (a token, a session key).
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Tally counts the natural keys of a fake's objects (a name per account, ...).
type Tally map[string]int

// Add counts key once more.
func (t Tally) Add(key string) { t[key]++ }

// Duplicates lists the keys counted more than once as "KEY (COUNT)", sorted; an
// empty list (not nil) when there are none.
func (t Tally) Duplicates() []string {
	out := []string{}
	for k, n := range t {
		if n > 1 {
			out = append(out, fmt.Sprintf("%s (%d)", k, n))
		}
	}
	sort.Strings(out)
	return out
}

// DuplicatesError is nil for no duplicates, else an error listing them after what
// ("duplicate accounts: a (2), b (3)").
func DuplicatesError(what string, duplicates []string) error {
	if len(duplicates) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %s", what, strings.Join(duplicates, ", "))
}

// Find returns the first element of l that match accepts.
func Find[T any](l []T, match func(T) bool) (T, bool) {
	for _, v := range l {
		if match(v) {
			return v, true
		}
	}
	var zero T
	return zero, false
}

// SortedKeys returns the keys of m in order (an empty list, not nil, for none).
func SortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
