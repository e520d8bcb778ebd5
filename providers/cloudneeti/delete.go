package cloudneeti

import (
	"context"
	"fmt"

	"provision/providers"
)

var (
	_ providers.Remover   = AccountKind{}
	_ providers.Refresher = (*account)(nil)
)

// Delete implements providers.Remover. The public API (Cloudneeti/Cloudneeti_SaaS_Docs
// docs/userGuide: token, onboarding, licenseAccounts, config, rescan, job status)
// has no call that offboards an account or takes it out of an API application's
// scope, so nothing is sent: the error says what to do by hand.
func (AccountKind) Delete(_ context.Context, _ *providers.Build, d *providers.Deletion) error {
	what := "cloudneeti account " + d.Task.ID
	if id := d.PriorValue(OutAccountID); id != "" {
		what = fmt.Sprintf("cloudneeti account %s (id %s)", d.Task.ID, id)
	}
	return providers.CannotDelete(what, "the Cloudneeti API has no offboarding call: remove the account in the Cloudneeti portal, then forget the task (provision state forget)")
}

// Drift implements providers.Refresher, read-only (licenseAccounts): the account
// gone, renamed, onboarded from another cloud, or out of the API scope the item
// asks for. Onboarding details (role, tenant, secret) cannot be read back.
func (a *account) Drift(ctx context.Context, x *providers.Exec) ([]providers.FieldDiff, error) {
	list, err := a.c.Accounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("list license accounts: %w", err)
	}
	id := x.PriorValue(OutAccountID)
	var acc *Account
	for i := range list {
		if list[i].ID == id {
			acc = &list[i]
		}
	}
	if acc == nil {
		return []providers.FieldDiff{providers.Missing(fmt.Sprintf("account %q (id %s)", a.s.AccountName, id))}, nil
	}
	var out []providers.FieldDiff
	if acc.Name != "" && acc.Name != a.s.AccountName {
		out = append(out, providers.FieldDiff{Field: "account_name", Want: a.s.AccountName, Got: acc.Name})
	}
	if !connectorMatches(acc.Connector, a.s.Cloud) {
		out = append(out, providers.FieldDiff{Field: "cloud", Want: a.s.Cloud, Got: acc.Connector})
	}
	if *a.s.APIScope && !acc.InScope {
		out = append(out, providers.FieldDiff{Field: "api_scope", Want: "true", Got: "false"})
	}
	return out, nil
}
