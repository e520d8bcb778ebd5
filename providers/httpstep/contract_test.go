package httpstep

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"testing"

	"provision/providers/httpstep/httpfake"
	"provision/providers/providertest"
)

const contractSecret = "http-client-secret-canary-7310"

// contractPlan creates widgets (a non-idempotent POST made safe by a lookup) and
// labels each with the id its create returned (an idempotent PUT); both declare
// their delete call.
const contractPlan = `version: 1
name: http-contract
endpoints:
  api:
    kind: http
    url: "%s"
    auth: {type: oauth2-client-credentials, token_url: /oauth/token, client_id: contract, client_secret: "${env.HTTP_CLIENT_SECRET}"}
http:
  defaults: {endpoint: api}
  items:
    - name: widget-${row.value}
      foreach: {range: {from: 1, to: 4}}
      method: POST
      path: /v1/widgets
      body: {name: "widget-${row.value}"}
      expect: [201]
      outputs: {id: id}
      lookup:
        path: /v1/widgets
        query: {name: "widget-${row.value}"}
        match: items[0].id
        outputs: {id: "items[0].id"}
      delete: {path: "/v1/widgets/{id}"}
    - name: label-${row.value}
      foreach: {range: {from: 1, to: 4}}
      method: PUT
      path: /v1/labels/${outputs.widget-${row.value}.id}
      body: {name: "label-${row.value}"}
      outputs: {id: id}
      delete: {path: "/v1/labels/{id}"}
`

func TestHTTPStep_Contract(t *testing.T) {
	providertest.Run(t, providertest.Target{
		Kinds:   Kinds(),
		Secrets: map[string]string{"HTTP_CLIENT_SECRET": contractSecret},
		Creates: []providertest.Route{{Method: http.MethodPost, Path: "/v1/widgets"}},
		Auth:    []providertest.Route{{Method: http.MethodPost, Path: "/oauth/token"}},
		Deletes: []providertest.Route{{Method: http.MethodDelete, Path: "/v1/labels/"}, {Method: http.MethodDelete, Path: "/v1/widgets/"}},
		New: func(t *testing.T) *providertest.Fake {
			s := httpfake.New(httpfake.Options{ClientID: "contract", ClientSecret: contractSecret})
			return &providertest.Fake{
				Handler:  s,
				Plan:     func(base string) string { return fmt.Sprintf(contractPlan, base) },
				Injector: s.Faults,
				Check:    func() error { return contractCheck(s) },
				Snapshot: func() []string { return contractObjects(s) },
			}
		},
	})
}

// contractObjects lists widgets by name and labels by name and the widget they
// label.
func contractObjects(s *httpfake.Server) []string {
	names := map[string]string{}
	for _, o := range s.Objects() {
		if o.Collection == "widgets" {
			names[o.ID] = o.Name
		}
	}
	var out []string
	for _, o := range s.Objects() {
		switch o.Collection {
		case "widgets":
			out = append(out, "widget "+o.Name)
		default:
			out = append(out, fmt.Sprintf("%s %s on %q", o.Collection, o.Name, names[o.ID]))
		}
	}
	sort.Strings(out)
	return out
}

// contractCheck: every widget created exactly once, every label on an existing widget.
func contractCheck(s *httpfake.Server) error {
	var errs []error
	creates := s.Creates()
	for i := 1; i <= 4; i++ {
		if n := creates[fmt.Sprintf("widgets/widget-%d", i)]; n != 1 {
			errs = append(errs, fmt.Errorf("widget-%d created %d times", i, n))
		}
	}
	widgets := map[string]bool{}
	var labels []string
	for _, o := range s.Objects() {
		switch o.Collection {
		case "widgets":
			widgets[o.ID] = true
		case "labels":
			labels = append(labels, o.ID)
		}
	}
	sort.Strings(labels)
	if len(labels) != 4 {
		errs = append(errs, fmt.Errorf("%d labels, want 4", len(labels)))
	}
	for _, id := range labels {
		if !widgets[id] {
			errs = append(errs, fmt.Errorf("label %s names no widget", id))
		}
	}
	return errors.Join(errs...)
}
