package cloudneeti

import (
	"net/http"
	"strings"
	"testing"
)

var brokenAnswers = []string{
	"",
	"null",
	`<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>`,
	`{"result": {"token": "abc`,
	`{"statusCode": "two hundred"}`,
	`{"statusCode": 1e400}`,
	`{"result": [1, 2], "statusCode": 200}`,
	`{"result": {"accounts": {"accountId": 1}}, "statusCode": 200}`,
	`{"message": "` + strings.Repeat("m", 70000) + `", "statusCode": 500}`,
	strings.Repeat("{", 10000),
	"\xff\xfe\x00",
}

func FuzzDecodeEnvelope(f *testing.F) {
	for _, s := range append([]string{`{"result": {"accountId": "a", "jobId": "j"}, "statusCode": 200, "message": "Request Successful"}`,
		`{"result": null, "statusCode": 409, "message": "Account with name x already exists"}`, `{"statusCode": "401", "message": "Unauthorized"}`}, brokenAnswers...) {
		f.Add(200, []byte(s))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		res, err := DecodeEnvelope("op", status, body)
		if err != nil && res != nil {
			t.Fatal("result with error")
		}
		if err != nil && len(err.Error()) > 500 {
			t.Fatalf("error not clipped: %d", len(err.Error()))
		}
		_, _ = DecodeAccounts(res)
		_ = expired(status, http.Header{}, body)
	})
}

func FuzzDecodeToken(f *testing.F) {
	for _, s := range append([]string{`{"token": "eyJ0", "statusCode": 200, "message": "Request Successful"}`, `{"result": {"token": "eyJ0"}, "statusCode": 200}`,
		`{"result": "eyJ0", "statusCode": 200}`, `{"result": {"token": ""}, "statusCode": 200}`, `{"token": "a b"}`}, brokenAnswers...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		tok, err := DecodeToken(body)
		if err == nil && (tok == "" || strings.ContainsAny(tok, " \n\"")) {
			t.Fatalf("accepted %q", tok)
		}
	})
}

func FuzzDecodeAccounts(f *testing.F) {
	for _, s := range append([]string{`{"accounts": [{"accountId": "a", "accountName": "n", "isInApiScope": true, "connectorType": "AWS"}]}`, `[{"accountId": "a"}]`, `{"accounts": null}`}, brokenAnswers...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { _, _ = DecodeAccounts(body) })
}

func FuzzDecodeError(f *testing.F) {
	for _, s := range append([]string{`{"statusCode": 401, "message": "Access denied due to invalid subscription key."}`, `{"result": null, "statusCode": 400, "message": "Validation failed"}`}, brokenAnswers...) {
		f.Add(400, []byte(s))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		code, msg := DecodeError(status, http.Header{}, body)
		if len(msg) > 400 || len(code) > 100 {
			t.Fatalf("not clipped: %d/%d bytes", len(code), len(msg))
		}
	})
}
