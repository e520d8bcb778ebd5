// Package openvcloud provisions OpenvCloud cloud spaces through the cloud API
// (POST /restmachine/cloudapi/<actor>/<method>). Endpoints of kind "openvcloud"
// authenticate with an ItsYou.online client-credentials JWT (client_id,
// client_secret, token_url) or with a username/password session key (auth type
// "session"; 419 answers renew it).
//
// A create is not idempotent. With the _async form (the default) the task GUID is
// checkpointed the moment it is returned and a resumed run keeps polling
// /restmachine/system/task/get instead of creating again; an attempt whose outcome is
// unknown looks the space up by name first, and a 409 "already exists" adopts it.
package openvcloud

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"provision/plan"
	"provision/providers"
	"provision/providers/rest"
	"provision/state"
)

// Section and endpoint kind.
const (
	Section      = "openvcloud_cloudspaces"
	EndpointKind = "openvcloud"
	// DefaultTokenURL is ItsYou.online's token endpoint.
	DefaultTokenURL = "https://itsyou.online/v1/oauth/access_token"
)

// Kinds returns the kinds of this package.
func Kinds() []providers.Kind { return []providers.Kind{Kind{}} }

var _ providers.Kind = Kind{}

// Client talks to one OpenvCloud endpoint; safe for concurrent use.
type Client struct {
	c *rest.Client
	// PollEvery and PollFor bound async task polling (defaults 2s and 10m).
	PollEvery, PollFor time.Duration
}

func errorDecoder(status int, h http.Header, body []byte) (string, string) {
	var s string
	if json.Unmarshal(body, &s) == nil && s != "" {
		return "", s
	}
	return rest.DefaultErrorDecoder(status, h, body)
}

// jwtExpiry reads the exp claim of a JWT (no signature check: the API checks it).
func jwtExpiry(jwt string) time.Time {
	parts := strings.Split(jwt, ".")
	if len(parts) < 2 {
		return time.Time{}
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(b, &c) != nil || c.Exp == 0 {
		return time.Time{}
	}
	return time.Unix(c.Exp, 0)
}

// NewClient builds the client for an endpoint.
func NewClient(ep *plan.Endpoint, red *plan.Redactor) (*Client, error) {
	a := ep.Auth
	typ := a.Type
	if typ == "" {
		typ = "itsyouonline"
		if a.ClientID == "" && a.Username != "" {
			typ = "session"
		}
	}
	auth := &rest.TokenAuth{Redactor: red}
	var expired func(int, http.Header, []byte) bool
	switch typ {
	case "itsyouonline":
		if a.ClientID == "" || a.ClientSecret.IsZero() {
			return nil, errors.New("auth itsyouonline: client_id and client_secret are required")
		}
		tokenURL := a.TokenURL
		if tokenURL == "" {
			tokenURL = DefaultTokenURL
		}
		u, err := url.Parse(tokenURL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("auth token_url %q: want an absolute URL", tokenURL)
		}
		// The token host is another service: its own client, no credentials shared.
		tc, err := rest.New(rest.Config{Name: ep.Name + " token", BaseURL: u.Scheme + "://" + u.Host, TLS: ep.TLS, Timeout: ep.Timeout.D()})
		if err != nil {
			return nil, err
		}
		auth.Fetch = func(ctx context.Context, _ *rest.Client) (rest.Token, error) {
			resp, err := tc.Do(ctx, &rest.Request{Method: http.MethodPost, Path: u.Path, NoAuth: true, Idempotent: true, Op: "ItsYou.online token request",
				Header: http.Header{"Accept": {"application/jwt, application/json"}},
				Form:   url.Values{"grant_type": {"client_credentials"}, "client_id": {a.ClientID}, "client_secret": {a.ClientSecret.Reveal()}, "response_type": {"id_token"}, "validity": {"3600"}}})
			if err != nil {
				return rest.Token{}, err
			}
			jwt := strings.TrimSpace(string(resp.Body))
			var j struct {
				AccessToken string `json:"access_token"`
			}
			if json.Unmarshal(resp.Body, &j) == nil && j.AccessToken != "" {
				jwt = j.AccessToken
			}
			if strings.Count(jwt, ".") != 2 {
				return rest.Token{}, &providers.Error{Op: "ItsYou.online token request", Status: resp.Status, Message: "answer is not a JWT"}
			}
			return rest.Token{Value: jwt, Expiry: jwtExpiry(jwt)}, nil
		}
		auth.Apply = func(req *http.Request, t string) { req.Header.Set("Authorization", "bearer "+t) }
	case "session":
		if a.Username == "" || a.Password.IsZero() {
			return nil, errors.New("auth session: username and password are required")
		}
		auth.Fetch = func(ctx context.Context, c *rest.Client) (rest.Token, error) {
			resp, err := c.Do(ctx, &rest.Request{Method: http.MethodPost, Path: "/restmachine/cloudapi/users/authenticate", NoAuth: true, Idempotent: true, Op: "session login",
				JSON: map[string]string{"username": a.Username, "password": a.Password.Reveal()}})
			if err != nil {
				return rest.Token{}, err
			}
			var key string
			if err := resp.JSON("session login", &key); err != nil {
				return rest.Token{}, err
			}
			return rest.Token{Value: key}, nil
		}
		auth.Apply = func(req *http.Request, t string) {
			q := req.URL.Query()
			q.Set("authkey", t)
			req.URL.RawQuery = q.Encode()
		}
		expired = func(status int, _ http.Header, _ []byte) bool {
			return status == 419 || status == http.StatusUnauthorized
		}
	default:
		return nil, fmt.Errorf("auth type %q: openvcloud endpoints use itsyouonline or session", a.Type)
	}
	c, err := rest.New(rest.Config{Name: ep.Name, BaseURL: ep.URL, TLS: ep.TLS, Limits: ep.Limits, Timeout: ep.Timeout.D(), Auth: auth, DecodeError: errorDecoder, Expired: expired})
	if err != nil {
		return nil, err
	}
	return &Client{c: c, PollEvery: 2 * time.Second, PollFor: 10 * time.Minute}, nil
}

// call invokes actor/method with JSON parameters.
func (c *Client) call(ctx context.Context, method string, params map[string]any, idempotent bool, out any) (*rest.Response, error) {
	resp, err := c.c.Do(ctx, &rest.Request{Method: http.MethodPost, Path: "/restmachine/cloudapi/" + method, JSON: params, Idempotent: idempotent, Op: method})
	if err != nil {
		return nil, err
	}
	if out != nil {
		if err := resp.JSON(method, out); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// Space is a cloud space as listed.
type Space struct {
	ID        int    `json:"id"`
	Name      string `json:"name"`
	AccountID int    `json:"accountId"`
	Location  string `json:"location"`
	Status    string `json:"status"`
}

// Spaces lists the live cloud spaces.
func (c *Client) Spaces(ctx context.Context) ([]Space, error) {
	var out []Space
	_, err := c.call(ctx, "cloudspaces/list", map[string]any{"includedeleted": false}, true, &out)
	return out, err
}

// errTaskGone: the task GUID is unknown or its result expired (600 s).
var errTaskGone = errors.New("async task unknown or its result expired")

// Poll waits for an async task and returns its result or its error text.
func (c *Client) Poll(ctx context.Context, guid string) (json.RawMessage, error) {
	deadline := time.Now().Add(c.PollFor)
	wait := 250 * time.Millisecond // then doubling up to PollEvery
	for {
		resp, err := c.c.Do(ctx, &rest.Request{Method: http.MethodPost, Path: "/restmachine/system/task/get", JSON: map[string]string{"taskguid": guid}, Idempotent: true, OK: []int{200, 202}, Op: "system/task/get"})
		if providers.StatusOf(err) == http.StatusNotFound {
			return nil, errTaskGone
		}
		if err != nil {
			return nil, err
		}
		if resp.Status == http.StatusOK {
			var pair []json.RawMessage
			if err := resp.JSON("system/task/get", &pair); err != nil || len(pair) != 2 {
				return nil, &providers.Error{Op: "system/task/get", Status: 200, Message: "want [ok, result]"}
			}
			var ok bool
			if err := json.Unmarshal(pair[0], &ok); err != nil {
				return nil, &providers.Error{Op: "system/task/get", Status: 200, Message: "want [ok, result]"}
			}
			if !ok {
				var msg string
				_ = json.Unmarshal(pair[1], &msg)
				if msg == "" {
					msg = string(pair[1])
				}
				return nil, &taskFailed{msg: msg}
			}
			return pair[1], nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("async task %s still running after %s", guid, c.PollFor)
		}
		t := time.NewTimer(wait)
		wait = min(2*wait, c.PollEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

type taskFailed struct{ msg string }

func (e *taskFailed) Error() string { return "async task failed: " + e.msg }

// Spec is one openvcloud_cloudspaces item.
type Spec struct {
	Endpoint               string `yaml:"endpoint" json:"endpoint"`
	AccountID              int    `yaml:"account_id" json:"account_id"`
	Location               string `yaml:"location" json:"location"`
	Name                   string `yaml:"name" json:"name"`
	Access                 string `yaml:"access" json:"access"`
	MaxMemoryCapacity      *int   `yaml:"max_memory_capacity" json:"max_memory_capacity"`
	MaxVDiskCapacity       *int   `yaml:"max_vdisk_capacity" json:"max_vdisk_capacity"`
	MaxCPUCapacity         *int   `yaml:"max_cpu_capacity" json:"max_cpu_capacity"`
	MaxNetworkPeerTransfer *int   `yaml:"max_network_peer_transfer" json:"max_network_peer_transfer"`
	MaxNumPublicIP         *int   `yaml:"max_num_public_ip" json:"max_num_public_ip"`
	ExternalNetworkID      *int   `yaml:"external_network_id" json:"external_network_id"`
	AllowedVMSizes         []int  `yaml:"allowed_vm_sizes" json:"allowed_vm_sizes"`
	PrivateNetwork         string `yaml:"private_network" json:"private_network"`
	Type                   string `yaml:"type" json:"type"`
	Async                  *bool  `yaml:"async" json:"async"`
	WaitDeployed           bool   `yaml:"wait_deployed" json:"wait_deployed"`
}

// Kind builds cloud space tasks.
type Kind struct{}

func (Kind) Section() string { return Section }
func (Kind) Doc() string     { return doc }

const doc = `openvcloud_cloudspaces: an OpenvCloud cloud space (cloudspaces/create).
  endpoint                    openvcloud endpoint (required); auth: itsyouonline
                              {client_id, client_secret, token_url (default ItsYou.online)}
                              or {type: session, username, password}
  account_id                  account id (required, integer)
  location                    location code (required)
  name                        default: the item name (unique per account)
  access                      user to grant access (default: the API user)
  max_memory_capacity, max_vdisk_capacity, max_cpu_capacity,
  max_network_peer_transfer, max_num_public_ip   limits (default -1: unlimited)
  external_network_id         optional
  allowed_vm_sizes            list of size ids
  private_network             CIDR (default 192.168.103.0/24)
  type                        routeros (default) or vgw
  async                       use _async and poll the task (default true)
  wait_deployed               poll cloudspaces/get until DEPLOYED (default false)
  outputs: cloudspace_id, status, task_guid`

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
	if s.AccountID <= 0 {
		errs = append(errs, errors.New("account_id: required (a positive integer)"))
	}
	if s.Location == "" {
		errs = append(errs, errors.New("location: required"))
	}
	if s.PrivateNetwork == "" {
		s.PrivateNetwork = "192.168.103.0/24"
	}
	if _, _, err := net.ParseCIDR(s.PrivateNetwork); err != nil {
		errs = append(errs, fmt.Errorf("private_network: %q is not a CIDR like 192.168.103.0/24", s.PrivateNetwork))
	}
	if s.Type == "" {
		s.Type = "routeros"
	}
	if s.Type != "routeros" && s.Type != "vgw" {
		errs = append(errs, fmt.Errorf("type: %q must be routeros or vgw", s.Type))
	}
	for _, l := range []struct {
		name string
		v    *int
	}{{"max_memory_capacity", s.MaxMemoryCapacity}, {"max_vdisk_capacity", s.MaxVDiskCapacity}, {"max_cpu_capacity", s.MaxCPUCapacity}, {"max_network_peer_transfer", s.MaxNetworkPeerTransfer}, {"max_num_public_ip", s.MaxNumPublicIP}} {
		if l.v != nil && *l.v < -1 {
			errs = append(errs, fmt.Errorf("%s: %d (want -1 for unlimited, or a limit)", l.name, *l.v))
		}
	}
	if s.Async == nil {
		t := true
		s.Async = &t
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

func (a *action) params() map[string]any {
	s := a.s
	p := map[string]any{"accountId": s.AccountID, "location": s.Location, "name": s.Name, "access": s.Access, "privatenetwork": s.PrivateNetwork, "type": s.Type}
	for k, v := range map[string]*int{"maxMemoryCapacity": s.MaxMemoryCapacity, "maxVDiskCapacity": s.MaxVDiskCapacity, "maxCPUCapacity": s.MaxCPUCapacity, "maxNetworkPeerTransfer": s.MaxNetworkPeerTransfer, "maxNumPublicIP": s.MaxNumPublicIP} {
		if v != nil {
			p[k] = *v
		} else {
			p[k] = -1
		}
	}
	if s.ExternalNetworkID != nil {
		p["externalnetworkId"] = *s.ExternalNetworkID
	}
	if len(s.AllowedVMSizes) > 0 {
		p["allowedVMSizes"] = s.AllowedVMSizes
	}
	return p
}

// find looks a live space up by account and name; a location mismatch is an error.
func (a *action) find(ctx context.Context) (*Space, error) {
	list, err := a.c.Spaces(ctx)
	if err != nil {
		return nil, fmt.Errorf("list cloud spaces: %w", err)
	}
	for _, sp := range list {
		if sp.Name == a.s.Name && sp.AccountID == a.s.AccountID && sp.Status != "DESTROYED" {
			if sp.Location != a.s.Location {
				return nil, fmt.Errorf("cloud space %q exists in location %s, not %s: refusing to adopt it", a.s.Name, sp.Location, a.s.Location)
			}
			return &sp, nil
		}
	}
	return nil, nil
}

func (a *action) Apply(ctx context.Context, x *providers.Exec) (state.Outputs, error) {
	if id := x.PriorValue("cloudspace_id"); id != "" {
		return a.finish(ctx, x, id)
	}
	if guid := x.PriorValue("task_guid"); guid != "" {
		id, err := a.await(ctx, x, guid)
		if !errors.Is(err, errTaskGone) {
			if err != nil {
				return nil, err
			}
			return a.finish(ctx, x, id)
		}
		x.Log.Info().Str("task_guid", guid).Msg("async task result is gone: looking the cloud space up")
	}
	if x.InDoubt || x.Attempt > 1 || x.PriorValue("task_guid") != "" {
		sp, err := a.find(ctx)
		if err != nil {
			return nil, err
		}
		if sp != nil {
			return a.finish(ctx, x, strconv.Itoa(sp.ID))
		}
	}
	p := a.params()
	if *a.s.Async {
		p["_async"] = true
		var guid string
		if _, err := a.c.call(ctx, "cloudspaces/create", p, false, &guid); err != nil {
			return nil, fmt.Errorf("create cloud space %s: %w", a.s.Name, err)
		}
		if err := x.Checkpoint(state.Outputs{"task_guid": state.Plain(guid)}); err != nil {
			return nil, err
		}
		id, err := a.await(ctx, x, guid)
		if err != nil {
			return nil, err
		}
		return a.finish(ctx, x, id)
	}
	var id json.Number
	_, err := a.c.call(ctx, "cloudspaces/create", p, false, &id)
	if providers.StatusOf(err) == http.StatusConflict {
		return a.adopt(ctx, x)
	}
	if err != nil {
		return nil, fmt.Errorf("create cloud space %s: %w", a.s.Name, err)
	}
	return a.finish(ctx, x, id.String())
}

// await polls a task; "already exists" adopts the existing space.
func (a *action) await(ctx context.Context, x *providers.Exec, guid string) (string, error) {
	res, err := a.c.Poll(ctx, guid)
	var tf *taskFailed
	if errors.As(err, &tf) {
		if strings.Contains(tf.msg, "already exists") {
			out, err := a.adopt(ctx, x)
			if err != nil {
				return "", err
			}
			return out["cloudspace_id"].Value, nil
		}
		return "", fmt.Errorf("create cloud space %s: %w", a.s.Name, err)
	}
	if err != nil {
		return "", err
	}
	var id json.Number
	if err := json.Unmarshal(res, &id); err != nil {
		return "", &providers.Error{Op: "system/task/get", Message: "task result is not a cloud space id"}
	}
	return id.String(), nil
}

func (a *action) adopt(ctx context.Context, x *providers.Exec) (state.Outputs, error) {
	sp, err := a.find(ctx)
	if err != nil {
		return nil, err
	}
	if sp == nil {
		return nil, fmt.Errorf("cloud space %s: the API says it exists but it is not listed", a.s.Name)
	}
	x.Log.Debug().Int("cloudspace_id", sp.ID).Msg("adopted existing cloud space")
	return a.finish(ctx, x, strconv.Itoa(sp.ID))
}

func (a *action) finish(ctx context.Context, x *providers.Exec, id string) (state.Outputs, error) {
	if err := x.Checkpoint(state.Outputs{"cloudspace_id": state.Plain(id)}); err != nil {
		return nil, err
	}
	status := ""
	deadline := time.Now().Add(a.c.PollFor)
	for {
		var sp Space
		if _, err := a.c.call(ctx, "cloudspaces/get", map[string]any{"cloudspaceId": id}, true, &sp); err != nil {
			return nil, fmt.Errorf("read cloud space %s: %w", id, err)
		}
		status = sp.Status
		if !a.s.WaitDeployed || status == "DEPLOYED" {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("cloud space %s still %s after %s", id, status, a.c.PollFor)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(a.c.PollEvery):
		}
	}
	out := state.Outputs{"cloudspace_id": state.Plain(id), "status": state.Plain(status)}
	if g := x.PriorValue("task_guid"); g != "" {
		out["task_guid"] = state.Plain(g)
	}
	return out, nil
}
