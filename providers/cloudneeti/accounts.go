package cloudneeti

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"provision/plan"
	"provision/providers"
	"provision/state"
)

// Section and endpoint kind of this package.
const (
	Section      = "cloudneeti_accounts"
	EndpointKind = "cloudneeti"
)

// Kinds returns the kinds of this package.
func Kinds() []providers.Kind { return []providers.Kind{AccountKind{}} }

// AccountKind builds cloudneeti_accounts tasks.
type AccountKind struct{}

var _ providers.Kind = AccountKind{}

// Section implements providers.Kind.
func (AccountKind) Section() string { return Section }

// Doc implements providers.Kind.
func (AccountKind) Doc() string { return accountsDoc }

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

// Spec is one cloudneeti_accounts item; Build fills the defaults. Its JSON form is the
// task hash (the Azure secret marshals as "***": changing it does not re-run a task).
type Spec struct {
	Endpoint    string `yaml:"endpoint" json:"endpoint"`
	AccountName string `yaml:"account_name" json:"account_name"`
	Cloud       string `yaml:"cloud" json:"cloud"`
	AWS         *AWS   `yaml:"aws" json:"aws,omitempty"`
	Azure       *Azure `yaml:"azure" json:"azure,omitempty"`
	APIScope    *bool  `yaml:"api_scope" json:"api_scope"`
	Rescan      bool   `yaml:"rescan" json:"rescan"`
}

var (
	awsIDRE   = regexp.MustCompile(`^\d{12}$`)
	roleRE    = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
	uuidRE    = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	domainRE  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$`)
	accNameRE = regexp.MustCompile(`^[^<>%&\\]{1,100}$`)
)

// Build implements providers.Kind.
func (AccountKind) Build(b *providers.Build, item *plan.Item) ([]*providers.Task, error) {
	return providers.BuildOne(b, item, EndpointKind, func(s *Spec, p *providers.Problems) string {
		s.setDefaults(item.Name)
		s.check(p)
		return s.Endpoint
	}, NewClient, func(s *Spec, c *Client) providers.Action { return &account{s: s, c: c} })
}

// setDefaults fills the fields an item may leave out.
func (s *Spec) setDefaults(itemName string) {
	if s.AccountName == "" {
		s.AccountName = itemName
	}
	if s.APIScope == nil {
		t := true
		s.APIScope = &t
	}
}

// check validates the fields (defaults filled): the account name and the onboarding
// fields of its cloud, and only those.
func (s *Spec) check(p *providers.Problems) {
	if !providers.HasRef(s.AccountName) && (!accNameRE.MatchString(s.AccountName) || strings.TrimSpace(s.AccountName) != s.AccountName) {
		p.Add(providers.Path{"account_name"}, "%q must be 1-100 characters without <, >, %%, &, \\ or surrounding spaces", s.AccountName)
	}
	switch s.Cloud {
	case "aws":
		if s.AWS == nil {
			p.Add(providers.Path{"aws"}, "required with cloud: aws ({account_id, role_name})")
		} else {
			s.AWS.check(p)
		}
		if s.Azure != nil {
			p.Add(providers.Path{"azure"}, "not allowed with cloud: aws")
		}
	case "azure":
		if s.Azure == nil {
			p.Add(providers.Path{"azure"}, "required with cloud: azure ({domain_name, tenant_id, application_client_id, application_client_secret, subscription_id})")
		} else {
			s.Azure.check(p)
		}
		if s.AWS != nil {
			p.Add(providers.Path{"aws"}, "not allowed with cloud: azure")
		}
	case "":
		p.Add(providers.Path{"cloud"}, "required: aws or azure")
	default:
		p.Add(providers.Path{"cloud"}, "%q must be aws or azure", s.Cloud)
	}
}

func (a *AWS) check(p *providers.Problems) {
	if !providers.HasRef(a.AccountID) && !awsIDRE.MatchString(a.AccountID) {
		p.Add(providers.Path{"aws", "account_id"}, "%q is not a 12-digit AWS account id (quote it in YAML to keep leading zeros)", a.AccountID)
	}
	if !providers.HasRef(a.RoleName) && !roleRE.MatchString(a.RoleName) {
		p.Add(providers.Path{"aws", "role_name"}, "%q is not an IAM role name (1-64 letters, digits and +=,.@_-)", a.RoleName)
	}
}

func (z *Azure) check(p *providers.Problems) {
	if !providers.HasRef(z.DomainName) && !domainRE.MatchString(z.DomainName) {
		p.Add(providers.Path{"azure", "domain_name"}, "%q is not a domain name like contoso.onmicrosoft.com", z.DomainName)
	}
	for _, f := range []struct{ name, v string }{{"tenant_id", z.TenantID}, {"application_client_id", z.ApplicationClientID}, {"subscription_id", z.SubscriptionID}} {
		if !providers.HasRef(f.v) && !uuidRE.MatchString(f.v) {
			p.Add(providers.Path{"azure", f.name}, "%q is not a UUID like 0f0e0d0c-0b0a-4909-8807-060504030201", f.v)
		}
	}
	if z.ApplicationClientSecret.IsZero() {
		p.Add(providers.Path{"azure", "application_client_secret"}, "required (a secret: use ${env.NAME} or ${file.PATH})")
	}
}

// Outputs of an account task.
const (
	OutAccountID    = "account_id"
	OutJobID        = "job_id"
	OutRescanJobID  = "rescan_job_id"
	OutRescanStatus = "rescan_status"
)

// account is the action of one item.
type account struct {
	s *Spec
	c *Client
}

var _ providers.Action = (*account)(nil)

// connector maps the plan's cloud to the API's connectorType.
func connectorMatches(connector, cloud string) bool {
	return connector == "" || strings.EqualFold(connector, cloud) || strings.EqualFold(strings.TrimSuffix(connector, "Connector"), cloud)
}

// find looks the account up by its checkpointed id, else by name. An account of that
// name onboarded from another cloud is a permanent error (never adopted).
func (a *account) find(ctx context.Context, x *providers.Exec) (*Account, error) {
	list, err := a.c.Accounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("look up account %q: %w", a.s.AccountName, err)
	}
	var found *Account
	if id := x.PriorValue(OutAccountID); id != "" {
		for i := range list {
			if list[i].ID == id {
				found = &list[i]
			}
		}
	}
	for i := range list {
		if found == nil && list[i].Name == a.s.AccountName {
			found = &list[i]
		}
	}
	if found == nil {
		return nil, nil
	}
	if !connectorMatches(found.Connector, a.s.Cloud) {
		return nil, &providers.Error{Op: "adopt account", Message: fmt.Sprintf("account %q (id %s) exists with connector %s, not %s: refusing to adopt it; rename the item (account_name) or fix its cloud",
			found.Name, found.ID, found.Connector, a.s.Cloud)}
	}
	x.Log.Debug().Str("account_id", found.ID).Msg("found existing account")
	return found, nil
}

// Probe tells, read-only, whether the object already exists remotely (for a dry
// run that reads the API).
func (a *account) Probe(ctx context.Context, x *providers.Exec) (bool, string, error) {
	acc, err := a.find(ctx, x)
	if err != nil || acc == nil {
		return false, "", err
	}
	return true, fmt.Sprintf("account id %s, in API scope: %v", acc.ID, acc.InScope), nil
}

func (a *account) onboardBody() map[string]string {
	s := a.s
	if s.Cloud == "aws" {
		return map[string]string{"AccountName": s.AccountName, "AWSAccountId": s.AWS.AccountID, "AWSRoleName": s.AWS.RoleName}
	}
	z := s.Azure
	return map[string]string{"AccountName": s.AccountName, "DomainName": z.DomainName, "TenantId": z.TenantID, "ADApplicationClientId": z.ApplicationClientID,
		"ADApplicationClientSecret": z.ApplicationClientSecret.Reveal(), "SubscriptionId": z.SubscriptionID}
}

// Apply implements providers.Action: look the account up (checkpointed id, then name)
// and adopt it, else onboard it (checkpointing account_id and job_id at once; a 409
// adopts the account of that name); then add it to the API application's scope unless
// it is in it, and rescan (checkpointing the job id, then polling it) when asked.
func (a *account) Apply(ctx context.Context, x *providers.Exec) (state.Outputs, error) {
	x.Adopted = x.AdoptedBefore()
	s := a.s
	acc, err := a.findOrOnboard(ctx, x)
	if err != nil {
		return nil, err
	}
	if *s.APIScope && !acc.InScope {
		if err := a.c.AddToScope(ctx, acc.ID); err != nil {
			return nil, err
		}
		x.Log.Debug().Str("account_id", acc.ID).Msg("account added to the API scope")
	}
	out := state.Outputs{
		OutAccountID:    state.Plain(acc.ID),
		OutJobID:        state.Plain(x.PriorValue(OutJobID)),
		OutRescanJobID:  state.Plain(x.PriorValue(OutRescanJobID)),
		OutRescanStatus: state.Plain(x.PriorValue(OutRescanStatus)),
	}
	if !s.Rescan {
		return out, nil
	}
	job, st, err := a.rescan(ctx, x, acc.ID)
	if err != nil {
		return nil, err
	}
	out[OutRescanJobID], out[OutRescanStatus] = state.Plain(job), state.Plain(st)
	return out, nil
}

// findOrOnboard returns the item's account: the one found (adopted when it was there
// before), else a new one, its id and job checkpointed at once. Onboarding refused
// as a duplicate (409) adopts the account of that name.
func (a *account) findOrOnboard(ctx context.Context, x *providers.Exec) (*Account, error) {
	s := a.s
	acc, err := a.find(ctx, x)
	if err != nil {
		return nil, err
	}
	if acc != nil {
		if x.PriorValue(OutAccountID) != acc.ID {
			if aerr := x.Adopt(x.PriorValue(OutAccountID) == "" && x.FirstLook()); aerr != nil {
				return nil, aerr
			}
			if err := x.Checkpoint(state.Outputs{OutAccountID: state.Plain(acc.ID)}); err != nil {
				return nil, err
			}
			if x.Changed {
				x.Log.Debug().Str("account_id", acc.ID).Msg("account exists; its onboarding details cannot be changed through the API")
			}
		}
		return acc, nil
	}
	r, err := a.c.Onboard(ctx, s.Cloud, s.AccountName, a.onboardBody())
	switch {
	case providers.StatusOf(err) == http.StatusConflict:
		conflict := err
		found, err := a.find(ctx, x)
		if err != nil {
			return nil, err
		}
		if found == nil {
			return nil, fmt.Errorf("%w (no account of this name is listed: is the cloud account onboarded under another name?)", conflict)
		}
		if aerr := x.Adopt(x.FirstLook()); aerr != nil { // refused as a duplicate on the first try: it was there before
			return nil, aerr
		}
		if err := x.Checkpoint(state.Outputs{OutAccountID: state.Plain(found.ID)}); err != nil {
			return nil, err
		}
		x.Log.Debug().Str("account_id", found.ID).Msg("onboarding says the account exists: adopted")
		return found, nil
	case err != nil:
		return nil, err
	}
	if err := x.Checkpoint(state.Outputs{OutAccountID: state.Plain(r.AccountID), OutJobID: state.Plain(r.JobID)}); err != nil {
		return nil, err
	}
	x.Log.Debug().Str("account_id", r.AccountID).Str("job_id", r.JobID).Msg("account onboarded")
	return &Account{ID: r.AccountID, Name: s.AccountName}, nil
}

// rescan rescans the account and waits for the job's end state. A checkpointed
// rescan job (running, or finished in an earlier attempt) is polled instead of
// starting another one; a job the API no longer knows is started again once.
func (a *account) rescan(ctx context.Context, x *providers.Exec, accountID string) (job, status string, err error) {
	job = x.PriorValue(OutRescanJobID)
	for attempt := 0; ; attempt++ {
		if job == "" {
			if job, err = a.c.Rescan(ctx, accountID); err != nil {
				return "", "", err
			}
			if err := x.Checkpoint(state.Outputs{OutRescanJobID: state.Plain(job), OutRescanStatus: state.Plain("")}); err != nil {
				return "", "", err
			}
			x.Log.Debug().Str("rescan_job_id", job).Msg("rescan started")
		}
		st, err := a.c.Wait(ctx, accountID, job)
		switch {
		case errors.Is(err, ErrJobGone) && attempt == 0:
			// The checkpointed job is unknown (expired): start a new rescan.
			job = ""
			continue
		case errors.Is(err, ErrJobFailed):
			// Forget the failed job so that a rerun starts a new rescan.
			if cerr := x.Checkpoint(state.Outputs{OutRescanJobID: state.Plain(""), OutRescanStatus: state.Plain("")}); cerr != nil {
				return "", "", cerr
			}
			return "", "", &providers.Error{Op: "rescan account " + accountID, Message: fmt.Sprintf("rescan job %s ended %s", job, st), Err: ErrJobFailed}
		case err != nil:
			return "", "", err
		}
		return job, st, nil
	}
}
