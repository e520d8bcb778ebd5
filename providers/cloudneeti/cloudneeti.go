// Package cloudneeti onboards cloud accounts into Cloudneeti: the
// cloudneeti_accounts section onboards an AWS or Azure account (looked up by name
// first), adds it to the API application's scope, and optionally starts a rescan and
// waits for its job. Endpoints of kind "cloudneeti" carry the API subscription key
// (api_key), the license id, the API application id (client_id) and its secret
// (client_secret); tokens are issued per license and re-issued on 401 (their expiry
// is chosen per application and is not announced).
package cloudneeti

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"provision/plan"
	"provision/providers"
	"provision/providers/rest"
	"provision/state"
)

// Section and endpoint kind.
const (
	Section      = "cloudneeti_accounts"
	EndpointKind = "cloudneeti"
	keyHeader    = "Ocp-Apim-Subscription-Key"
)

// Kinds returns the kinds of this package.
func Kinds() []providers.Kind { return []providers.Kind{Kind{}} }

var _ providers.Kind = Kind{}

// Client talks to one Cloudneeti endpoint; safe for concurrent use.
type Client struct {
	c       *rest.Client
	license string
	// PollEvery bounds job polling (default 5s; the first polls come sooner).
	PollEvery, PollFor time.Duration
}

type envelope struct {
	Result     json.RawMessage `json:"result"`
	StatusCode rest.FlexInt    `json:"statusCode"`
	Message    string          `json:"message"`
	Token      string          `json:"token"`
}

func errorDecoder(status int, h http.Header, body []byte) (string, string) {
	var e envelope
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		return "", e.Message
	}
	return rest.DefaultErrorDecoder(status, h, body)
}

// result decodes the envelope's result, failing on a non-200 statusCode inside a
// 200 answer.
func result(resp *rest.Response, op string, v any) error {
	var e envelope
	if err := json.Unmarshal(resp.Body, &e); err != nil {
		return &providers.Error{Op: op, Status: resp.Status, Message: "answer is not the {result, statusCode, message} envelope", Err: err}
	}
	if e.StatusCode != 0 && e.StatusCode != 200 {
		pe := &providers.Error{Op: op, Status: int(e.StatusCode), Message: e.Message}
		pe.Retryable = e.StatusCode >= 500 || e.StatusCode == 429
		return pe
	}
	if v == nil || len(bytes.TrimSpace(e.Result)) == 0 {
		return nil
	}
	if err := json.Unmarshal(e.Result, v); err != nil {
		return &providers.Error{Op: op, Status: resp.Status, Message: "unexpected result", Err: err}
	}
	return nil
}

// NewClient builds the client for an endpoint.
func NewClient(ep *plan.Endpoint, red *plan.Redactor) (*Client, error) {
	a := ep.Auth
	var missing []string
	for name, v := range map[string]string{"api_key": a.APIKey.Reveal(), "license_id": a.LicenseID, "client_id (API application id)": a.ClientID, "client_secret (API application secret)": a.ClientSecret.Reveal()} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("auth: %s required", strings.Join(missing, ", "))
	}
	key := a.APIKey
	lic := a.LicenseID
	auth := &rest.TokenAuth{Redactor: red}
	auth.Fetch = func(ctx context.Context, c *rest.Client) (rest.Token, error) {
		q := url.Values{}
		if a.AccountID != "" {
			q.Set("accountId", a.AccountID)
		}
		resp, err := c.Do(ctx, &rest.Request{Method: http.MethodPost, Path: "/authorize/license/" + url.PathEscape(lic) + "/token", Query: q, NoAuth: true, Idempotent: true, Op: "license token request",
			Header: http.Header{keyHeader: {key.Reveal()}}, JSON: map[string]string{"APIApplicationId": a.ClientID, "Secret": a.ClientSecret.Reveal()}})
		if err != nil {
			return rest.Token{}, err
		}
		var e envelope
		if err := json.Unmarshal(resp.Body, &e); err != nil {
			return rest.Token{}, &providers.Error{Op: "license token request", Status: resp.Status, Message: "unexpected answer", Err: err}
		}
		tok := e.Token
		if tok == "" {
			var r struct {
				Token string `json:"token"`
			}
			if err := result(resp, "license token request", &r); err != nil {
				return rest.Token{}, err
			}
			tok = r.Token
		}
		return rest.Token{Value: tok}, nil
	}
	auth.Apply = func(req *http.Request, t string) {
		req.Header.Set("Authorization", "Bearer "+t)
		req.Header.Set(keyHeader, key.Reveal())
	}
	c, err := rest.New(rest.Config{Name: ep.Name, BaseURL: ep.URL, TLS: ep.TLS, Limits: ep.Limits, Timeout: ep.Timeout.D(), Auth: auth, DecodeError: errorDecoder})
	if err != nil {
		return nil, err
	}
	return &Client{c: c, license: lic, PollEvery: 5 * time.Second, PollFor: 30 * time.Minute}, nil
}

func (c *Client) do(ctx context.Context, method, path string, body any, idempotent bool, out any) error {
	op := method + " " + path
	resp, err := c.c.Do(ctx, &rest.Request{Method: method, Path: path, JSON: body, Idempotent: idempotent, Op: op})
	if err != nil {
		return err
	}
	return result(resp, op, out)
}

// AccountRow is a license account.
type AccountRow struct {
	ID        string `json:"accountId"`
	Name      string `json:"accountName"`
	InScope   bool   `json:"isInApiScope"`
	Connector string `json:"connectorType"`
}

func (c *Client) accounts(ctx context.Context) ([]AccountRow, error) {
	var r struct {
		Accounts []AccountRow `json:"accounts"`
	}
	err := c.do(ctx, http.MethodGet, "/onboarding/license/"+url.PathEscape(c.license)+"/licenseAccounts", nil, true, &r)
	return r.Accounts, err
}

// wait polls a job until Success (Failed is an error).
func (c *Client) wait(ctx context.Context, account, job string) (string, error) {
	deadline := time.Now().Add(c.PollFor)
	delay := 250 * time.Millisecond
	for {
		var r struct {
			JobStatus string `json:"jobStatus"`
		}
		if err := c.do(ctx, http.MethodGet, "/compliance/license/"+url.PathEscape(c.license)+"/account/"+url.PathEscape(account)+"/job/"+url.PathEscape(job)+"/status", nil, true, &r); err != nil {
			return "", err
		}
		switch r.JobStatus {
		case "Success":
			return r.JobStatus, nil
		case "Failed":
			return r.JobStatus, fmt.Errorf("job %s of account %s failed", job, account)
		}
		if time.Now().After(deadline) {
			return r.JobStatus, fmt.Errorf("job %s still %s after %s", job, r.JobStatus, c.PollFor)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, c.PollEvery)
	}
}

// AWS onboarding fields.
type AWS struct {
	AccountID string `yaml:"account_id" json:"account_id"`
	RoleName  string `yaml:"role_name" json:"role_name"`
}

// Azure onboarding fields.
type Azure struct {
	DomainName              string      `yaml:"domain_name" json:"domain_name"`
	TenantID                string      `yaml:"tenant_id" json:"tenant_id"`
	ApplicationClientID     string      `yaml:"application_client_id" json:"application_client_id"`
	ApplicationClientSecret plan.Secret `yaml:"application_client_secret" json:"application_client_secret"`
	SubscriptionID          string      `yaml:"subscription_id" json:"subscription_id"`
}

// Spec is one cloudneeti_accounts item.
type Spec struct {
	Endpoint string `yaml:"endpoint" json:"endpoint"`
	Name     string `yaml:"name" json:"name"`
	Cloud    string `yaml:"cloud" json:"cloud"`
	AWS      *AWS   `yaml:"aws" json:"aws"`
	Azure    *Azure `yaml:"azure" json:"azure"`
	APIScope *bool  `yaml:"api_scope" json:"api_scope"`
	Rescan   bool   `yaml:"rescan" json:"rescan"`
}

var (
	awsIDRE = regexp.MustCompile(`^\d{12}$`)
	uuidRE  = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

// Kind builds cloudneeti_accounts tasks.
type Kind struct{}

func (Kind) Section() string { return Section }
func (Kind) Doc() string     { return doc }

const doc = `cloudneeti_accounts: a cloud account onboarded into Cloudneeti.
  endpoint     cloudneeti endpoint (required); auth: {api_key (secret: the
               Ocp-Apim-Subscription-Key), license_id, client_id (API application id),
               client_secret (its secret), account_id (optional: account token)}
  name         AccountName (default: the item name); looked up before onboarding
  cloud        aws or azure (required)
  aws          {account_id (12 digits), role_name}
  azure        {domain_name, tenant_id, application_client_id, application_client_secret
               (secret), subscription_id} (ids are UUIDs)
  api_scope    add the account to the API application's scope (default true)
  rescan       start a rescan and wait for its job to succeed (default false)
  outputs: account_id, job_id, rescan_job_id, rescan_status
Duplicate onboarding answers are not documented; a 409 (or any answer) is followed by
a lookup by name, so a rerun never onboards twice.`

// Build implements providers.Kind.
func (Kind) Build(b *providers.Build, item *plan.Item) ([]*providers.Task, error) {
	var s Spec
	if err := providers.Decode(item, &s); err != nil {
		return nil, err
	}
	var errs []error
	if s.Name == "" {
		s.Name = item.Name
	}
	switch s.Cloud {
	case "aws":
		if s.AWS == nil {
			errs = append(errs, errors.New("aws: required with cloud aws ({account_id, role_name})"))
		} else {
			if !awsIDRE.MatchString(s.AWS.AccountID) {
				errs = append(errs, fmt.Errorf("aws.account_id: %q is not a 12-digit AWS account id", s.AWS.AccountID))
			}
			if s.AWS.RoleName == "" {
				errs = append(errs, errors.New("aws.role_name: required"))
			}
		}
		if s.Azure != nil {
			errs = append(errs, errors.New("azure: not allowed with cloud aws"))
		}
	case "azure":
		if s.Azure == nil {
			errs = append(errs, errors.New("azure: required with cloud azure"))
		} else {
			z := s.Azure
			if z.DomainName == "" {
				errs = append(errs, errors.New("azure.domain_name: required"))
			}
			for f, v := range map[string]string{"tenant_id": z.TenantID, "application_client_id": z.ApplicationClientID, "subscription_id": z.SubscriptionID} {
				if !uuidRE.MatchString(v) {
					errs = append(errs, fmt.Errorf("azure.%s: %q is not a UUID", f, v))
				}
			}
			if z.ApplicationClientSecret.IsZero() {
				errs = append(errs, errors.New("azure.application_client_secret: required"))
			}
		}
		if s.AWS != nil {
			errs = append(errs, errors.New("aws: not allowed with cloud azure"))
		}
	default:
		errs = append(errs, fmt.Errorf("cloud: %q must be aws or azure", s.Cloud))
	}
	if s.APIScope == nil {
		t := true
		s.APIScope = &t
	}
	client, err := providers.EndpointClient(b, item.Pos, s.Endpoint, EndpointKind, func(ep *plan.Endpoint) (*Client, error) { return NewClient(ep, b.Plan.Redactor) })
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, providers.ItemErrors(item, errs)
	}
	deps := providers.ItemDeps(item)
	sp := &s
	return []*providers.Task{{ID: item.Name, Kind: Section, Pos: item.Pos, Deps: deps, Refs: item.Refs, Spec: sp, Endpoint: s.Endpoint,
		Hash: providers.SpecHash(Section, item.Name, sp), Action: &action{s: sp, c: client}}}, nil
}

type action struct {
	s *Spec
	c *Client
}

func (a *action) find(ctx context.Context) (*AccountRow, error) {
	list, err := a.c.accounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("list license accounts: %w", err)
	}
	for _, r := range list {
		if r.Name == a.s.Name {
			if r.Connector != "" && !strings.EqualFold(r.Connector, a.s.Cloud) {
				return nil, fmt.Errorf("account %q exists with connector %s, not %s: refusing to adopt it", a.s.Name, r.Connector, a.s.Cloud)
			}
			return &r, nil
		}
	}
	return nil, nil
}

// Apply implements providers.Action.
func (a *action) Apply(ctx context.Context, x *providers.Exec) (state.Outputs, error) {
	s := a.s
	out := state.Outputs{}
	row, err := a.find(ctx)
	if err != nil {
		return nil, err
	}
	if row == nil {
		var body map[string]string
		if s.Cloud == "aws" {
			body = map[string]string{"AccountName": s.Name, "AWSAccountId": s.AWS.AccountID, "AWSRoleName": s.AWS.RoleName}
		} else {
			z := s.Azure
			body = map[string]string{"AccountName": s.Name, "DomainName": z.DomainName, "TenantId": z.TenantID, "ADApplicationClientId": z.ApplicationClientID,
				"ADApplicationClientSecret": z.ApplicationClientSecret.Reveal(), "SubscriptionId": z.SubscriptionID}
		}
		var r struct {
			AccountID string `json:"accountId"`
			JobID     string `json:"jobId"`
		}
		err := a.c.do(ctx, http.MethodPost, "/onboarding/license/"+url.PathEscape(a.c.license)+"/account/"+s.Cloud, body, false, &r)
		if providers.StatusOf(err) == http.StatusConflict {
			if row, err = a.find(ctx); err != nil || row == nil {
				return nil, fmt.Errorf("account %s: onboarding says it exists but the lookup does not find it: %v", s.Name, err)
			}
		} else if err != nil {
			return nil, fmt.Errorf("onboard %s account %s: %w", s.Cloud, s.Name, err)
		} else {
			if err := x.Checkpoint(state.Outputs{"account_id": state.Plain(r.AccountID), "job_id": state.Plain(r.JobID)}); err != nil {
				return nil, err
			}
			out["job_id"] = state.Plain(r.JobID)
			row = &AccountRow{ID: r.AccountID, Name: s.Name}
		}
	}
	out["account_id"] = state.Plain(row.ID)
	if *s.APIScope && !row.InScope {
		if err := a.c.do(ctx, http.MethodPut, "/onboarding/license/"+url.PathEscape(a.c.license)+"/config", map[string]string{"accountId": row.ID}, true, nil); err != nil {
			return nil, fmt.Errorf("add account %s to the API scope: %w", row.ID, err)
		}
	}
	if s.Rescan {
		job := x.PriorValue("rescan_job_id")
		if job == "" {
			var r struct {
				JobID string `json:"jobId"`
			}
			if err := a.c.do(ctx, http.MethodGet, "/compliance/license/"+url.PathEscape(a.c.license)+"/account/"+url.PathEscape(row.ID)+"/rescan", nil, false, &r); err != nil {
				return nil, fmt.Errorf("start rescan of %s: %w", row.ID, err)
			}
			job = r.JobID
			if err := x.Checkpoint(state.Outputs{"rescan_job_id": state.Plain(job)}); err != nil {
				return nil, err
			}
		}
		st, err := a.c.wait(ctx, row.ID, job)
		if err != nil {
			return nil, err
		}
		out["rescan_job_id"] = state.Plain(job)
		out["rescan_status"] = state.Plain(st)
	}
	return out, nil
}
