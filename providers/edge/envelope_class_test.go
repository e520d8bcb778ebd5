package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"provision/plan"
	"provision/providers"
	"provision/providers/rest"
)

// An error the platform reports in a 2xx envelope ({code, msg} with HTTP 200, as
// some builds answer: inference, see decode.go) is classified exactly like the same
// status sent as HTTP: one classification, rest's.
func TestEnvelopeError_ClassifiedLikeTheHTTPStatus(t *testing.T) {
	for _, status := range []int{400, 401, 403, 404, 408, 409, 422, 429, 500, 502, 503} {
		for _, idempotent := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d idempotent=%v", status, idempotent), func(t *testing.T) {
				body := fmt.Sprintf(`{"code": %d, "msg": "refused"}`, status)
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					w.Header().Set("Retry-After", "2")
					w.WriteHeader(status)
					fmt.Fprint(w, body)
				}))
				defer srv.Close()
				c, err := NewClient(&plan.Endpoint{Name: "edge", URL: srv.URL}, plan.NewRedactor())
				if err != nil {
					t.Fatal(err)
				}
				r := &rest.Request{Method: http.MethodPost, Path: "/v1/label", Idempotent: idempotent, NoAuth: true, Op: "create label"}
				_, httpErr := c.rc.Do(context.Background(), r)
				var want *providers.Error
				if !errors.As(httpErr, &want) {
					t.Fatalf("HTTP %d: %v", status, httpErr)
				}
				resp := &rest.Response{Status: 200, Header: http.Header{"Content-Type": {"application/json"}, "Retry-After": {"2"}}, Body: []byte(body)}
				got := envelopeError(r, resp, unwrap(resp.Body))
				if got.Status != want.Status || got.Code != want.Code || got.Message != want.Message || got.Retryable != want.Retryable ||
					got.MaybeApplied != want.MaybeApplied || got.Throttled != want.Throttled || got.RetryAfter != want.RetryAfter {
					t.Fatalf("envelope: %+v\nHTTP:     %+v", got, want)
				}
			})
		}
	}
}
