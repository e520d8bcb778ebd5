package openvcloud

import (
	"net/http"
	"strings"
	"testing"
)

var brokenAnswers = []string{
	"",
	"null",
	`<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>`,
	`{"access_token": "a.b`,
	`[true, 1`,
	`{"id": "x"}`,
	`[{"id": "seven", "accountId": []}]`,
	`"` + strings.Repeat("A", 70000) + `"`,
	strings.Repeat("[", 10000),
	"\xff\xfe\x00",
}

func FuzzDecodeTokenAnswer(f *testing.F) {
	for _, s := range append([]string{
		"eyJhbGciOiJFUzM4NCJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2ln",
		`{"access_token":"eyJhbGciOiJFUzM4NCJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2ln","token_type":"bearer"}`,
		`"eyJhbGciOiJFUzM4NCJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2ln"`,
		`{"id_token": "a.b.c"}`, "a..c", "a.b.c.d",
	}, brokenAnswers...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		jwt, err := DecodeTokenAnswer(body)
		if err == nil && strings.Count(jwt, ".") != 2 {
			t.Fatalf("accepted %q", jwt)
		}
		_ = JWTExpiry(jwt)
	})
}

func FuzzJWTExpiry(f *testing.F) {
	for _, s := range []string{"a.eyJleHAiOjE3MDAwMDAwMDB9.c", "a.eyJleHAiOiIxNzAwMDAwMDAwIn0.c", "a.eyJleHAiOjFlOTl9.c", "a.e30.c", "..", "a.%%%.c", "a.bnVsbA.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if e := JWTExpiry(s); !e.IsZero() && e.Unix() <= 0 {
			t.Fatalf("expiry %v", e)
		}
	})
}

func FuzzDecodeTaskAnswer(f *testing.F) {
	for _, s := range append([]string{`[true, 101]`, `[false, "Cloud Space with name x already exists."]`, `[false, {"a": 1}]`, `[true]`, `[1, 2]`, `["true", 3]`}, brokenAnswers...) {
		f.Add(200, []byte(s))
	}
	f.Add(202, []byte(""))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		done, res, err := DecodeTaskAnswer(status, body)
		if !done && res != nil {
			t.Fatal("result without done")
		}
		var te *TaskError
		if err != nil && len(err.Error()) > 400 {
			t.Fatalf("error not clipped: %d", len(err.Error()))
		}
		_ = te
		if done && err == nil {
			_, _ = decodeID(res)
		}
	})
}

func FuzzDecodeSpaces(f *testing.F) {
	for _, s := range append([]string{`[]`, `[{"id": 101, "name": "a", "accountId": 42, "location": "be-gen-1", "status": "DEPLOYED", "acl": []}]`,
		`[{"id": 1, "resourceLimits": {"CU_M": null, "CU_C": 4}}]`, `{"id": 1}`}, brokenAnswers...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { _, _ = DecodeSpaces(body) })
}

func FuzzDecodeError(f *testing.F) {
	for _, s := range append([]string{`"Cloud Space with name x already exists."`, `"key not valid or expired"`, `{"message": "m"}`}, brokenAnswers...) {
		f.Add(409, []byte(s))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		_, msg := DecodeError(status, http.Header{}, body)
		if len(msg) > 400 {
			t.Fatalf("message not clipped: %d bytes", len(msg))
		}
	})
}

func FuzzDecodeSessionKey(f *testing.F) {
	for _, s := range append([]string{`"4f1c2a9b7d"`, `4f1c2a9b7d`, `""`, `"a b"`}, brokenAnswers...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if k, err := decodeSessionKey(body); err == nil && (k == "" || strings.ContainsAny(k, " \n\"")) {
			t.Fatalf("accepted %q", k)
		}
	})
}
