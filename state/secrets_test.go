package state

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var key32 = bytes.Repeat([]byte{0xA5}, 32)

func TestRawKey(t *testing.T) {
	tests := []struct {
		name, text string
		raw        bool
	}{
		{"hex", hex.EncodeToString(key32), true},
		{"hex upper case", strings.ToUpper(hex.EncodeToString(key32)), true},
		{"base64 std", base64.StdEncoding.EncodeToString(key32), true},
		{"base64 url", base64.URLEncoding.EncodeToString([]byte(strings.Repeat("\xfb\xff", 16))), true},
		{"base64 unpadded", base64.RawStdEncoding.EncodeToString(key32), true},
		{"base64 of 31 bytes", base64.StdEncoding.EncodeToString(key32[:31]), false},
		{"base64 of 33 bytes", base64.StdEncoding.EncodeToString(append(key32, 1)), false},
		{"63 hex digits", hex.EncodeToString(key32)[:63], false},
		{"passphrase", "correct horse battery staple", false},
		{"empty", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := rawKey(tc.text); (got != nil) != tc.raw || (got != nil && len(got) != 32) {
				t.Fatalf("rawKey(%q) = %x, want raw=%v", tc.text, got, tc.raw)
			}
		})
	}
}

func TestStore_KeysRoundTripSecrets(t *testing.T) {
	tests := []struct{ name, key string }{
		{"hex key", hex.EncodeToString(key32)},
		{"base64 key", base64.StdEncoding.EncodeToString(key32)},
		{"base64 url key", base64.URLEncoding.EncodeToString(key32)},
		{"passphrase", "correct horse battery staple"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.db")
			s := openT(t, path, Options{Key: tc.key})
			if !s.Meta().HasKeyCheck {
				t.Error("no key check stored on first use")
			}
			if err := s.Put(&Record{ID: "a", Outputs: Outputs{"k": SecretOutput("canary-1"), "p": Plain("plain")}}); err != nil {
				t.Fatal(err)
			}
			closeT(t, s)
			for _, ro := range []bool{false, true} {
				s = openT(t, path, Options{Key: tc.key, ReadOnly: ro})
				r, _, err := s.Get("a")
				if err != nil || r.Outputs["k"] != SecretOutput("canary-1") || r.Outputs["p"] != Plain("plain") || r.SecretsDropped {
					t.Fatalf("read-only=%v: %+v %v", ro, r, err)
				}
				closeT(t, s)
			}
		})
	}
}

func TestOpen_WrongKeyIsRefused(t *testing.T) {
	hexKey := hex.EncodeToString(key32)
	otherHex := hex.EncodeToString(bytes.Repeat([]byte{1}, 32))
	tests := []struct{ name, written, given string }{
		{"other raw key", hexKey, otherHex},
		{"passphrase for a raw key", hexKey, "pass-phrase-number-one"},
		{"raw key for a passphrase", "pass-phrase-number-one", otherHex},
		{"other passphrase", "pass-phrase-number-one", "pass-phrase-number-two"},
		{"same key in another encoding is the same key", hexKey, ""}, // checked below
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.db")
			s := openT(t, path, Options{Key: tc.written})
			if err := s.Put(&Record{ID: "a", Outputs: Outputs{"k": SecretOutput("canary-x")}}); err != nil {
				t.Fatal(err)
			}
			closeT(t, s)
			sum := fileSum(t, path)
			if tc.given == "" {
				s := openT(t, path, Options{Key: base64.StdEncoding.EncodeToString(key32)})
				if r, _, err := s.Get("a"); err != nil || r.Outputs["k"].Value != "canary-x" {
					t.Fatalf("%+v %v", r, err)
				}
				return
			}
			for _, ro := range []bool{false, true} {
				_, err := Open(path, Options{PlanName: "plan-a", Key: tc.given, ReadOnly: ro})
				if !errors.Is(err, ErrWrongKey) {
					t.Fatalf("read-only=%v: err = %v, want ErrWrongKey", ro, err)
				}
				if strings.Contains(err.Error(), tc.given) || strings.Contains(err.Error(), tc.written) {
					t.Errorf("the error quotes a key: %v", err)
				}
			}
			if fileSum(t, path) != sum {
				t.Error("the file was modified")
			}
		})
	}
}

func TestStore_WithoutAKeySecretsAreDropped(t *testing.T) {
	t.Run("Put without a key", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "s.db")
		s := openT(t, path, Options{})
		if err := s.Put(&Record{ID: "a", Status: Done, Outputs: Outputs{"k": SecretOutput("canary-nokey"), "id": Plain("sys-1")}}); err != nil {
			t.Fatal(err)
		}
		closeT(t, s)
		// Even a key given later cannot bring back what was never stored.
		s = openT(t, path, Options{Key: testKey})
		r, _, err := s.Get("a")
		if err != nil || !r.SecretsDropped || r.Outputs["id"] != Plain("sys-1") || len(r.Outputs) != 1 {
			t.Fatalf("%+v %v", r, err)
		}
	})
	t.Run("reading a keyed file without the key", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "s.db")
		s := openT(t, path, Options{Key: testKey})
		if err := s.Put(&Record{ID: "a", Outputs: Outputs{"k": SecretOutput("canary"), "id": Plain("sys-1")}}, &Record{ID: "b"}); err != nil {
			t.Fatal(err)
		}
		closeT(t, s)
		for _, ro := range []bool{false, true} {
			s = openT(t, path, Options{ReadOnly: ro})
			all, err := s.Load()
			if err != nil {
				t.Fatal(err)
			}
			if a := all["a"]; !a.SecretsDropped || a.Outputs["id"] != Plain("sys-1") || len(a.Outputs) != 1 {
				t.Errorf("read-only=%v: %+v", ro, a)
			}
			if all["b"].SecretsDropped {
				t.Errorf("a record without secrets is marked: %+v", all["b"])
			}
			closeT(t, s)
		}
	})
}

// Secret values must never be in the file in clear text, in any page, live or free.
func TestStore_SecretsNeverInClearText(t *testing.T) {
	tests := []struct{ name, key string }{
		{"raw key", testKey},
		{"passphrase", "correct horse battery staple"},
		{"no key", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "s.db")
			scan := func(when string) {
				t.Helper()
				entries, _ := os.ReadDir(dir)
				for _, e := range entries {
					raw, _ := os.ReadFile(filepath.Join(dir, e.Name()))
					if bytes.Contains(raw, []byte("canary-secret-")) {
						t.Fatalf("%s: a secret output is in clear text in %s", when, e.Name())
					}
					if tc.key != "" && bytes.Contains(raw, []byte(tc.key)) {
						t.Fatalf("%s: the key is in %s", when, e.Name())
					}
				}
			}
			s := openT(t, path, Options{Key: tc.key})
			for round := range 3 { // overwrites free the old pages: they must be clean too
				for i := range 200 {
					r := &Record{ID: fmt.Sprintf("t%03d", i), Status: Done, Outputs: Outputs{
						"k":  SecretOutput(fmt.Sprintf("canary-secret-%d-%04d", round, i)),
						"id": Plain(fmt.Sprintf("plain-%d", i)),
					}}
					if err := s.Put(r); err != nil {
						t.Fatal(err)
					}
				}
				scan(fmt.Sprintf("round %d", round))
			}
			closeT(t, s)
			scan("after Close")
			s = openT(t, path, Options{Key: tc.key})
			r, _, err := s.Get("t007")
			if err != nil {
				t.Fatal(err)
			}
			if tc.key == "" {
				if !r.SecretsDropped || r.Outputs["k"].Value != "" {
					t.Errorf("without a key: %+v", r)
				}
			} else if r.Outputs["k"] != SecretOutput("canary-secret-2-0007") {
				t.Errorf("decrypted %+v", r.Outputs)
			}
			if err := s.Put(&Record{ID: "late", Outputs: Outputs{"k": SecretOutput("canary-secret-late")}}); err != nil {
				t.Fatal(err)
			}
			closeT(t, s)
			scan("after reopen and Put")
			if !bytes.Contains(must(os.ReadFile(path)), []byte("plain-7")) {
				t.Error("plain outputs should be stored as they are (the scan would find nothing otherwise)")
			}
		})
	}
}

// A sealed value cannot be moved to another task or output.
func TestStore_SealedValuesAreBoundToTaskAndOutput(t *testing.T) {
	sl, err := newSealer(key32)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := encodeRecord(&Record{ID: "a", Outputs: Outputs{"k": SecretOutput("v")}}, sl)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := decodeRecord("a", enc, sl); err != nil || r.Outputs["k"].Value != "v" {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := decodeRecord("b", enc, sl); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("under another task id: %v, want ErrCorrupt naming the task", err)
	}
	other, _ := newSealer(bytes.Repeat([]byte{1}, 32))
	if _, err := decodeRecord("a", enc, other); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("with another key: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
