package cloudneeti

import (
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	"provision/providers/cloudneeti/cnfake"
	"provision/providers/providertest"
)

// cnContractPlan onboards an AWS and an Azure account (the two create routes), the
// AWS one with a rescan (account token, job status); the subscription key, the API
// application secret and the Azure client secret are canaries.
const cnContractPlan = `version: 1
name: cn-contract
endpoints:
  cn: {kind: cloudneeti, url: "%s", auth: {api_key: "${env.CN_KEY}", license_id: lic-test-1, client_id: app-test-1, client_secret: "${env.CN_SECRET}"}}
cloudneeti_accounts:
  defaults: {endpoint: cn}
  items:
    - name: acct-aws
      cloud: aws
      aws: {account_id: "123456789012", role_name: CloudneetiReadOnly}
      rescan: true
    - name: acct-azure
      cloud: azure
      azure: {domain_name: contoso.onmicrosoft.com, tenant_id: 0f0e0d0c-0b0a-4909-8807-060504030201, application_client_id: 1a2b3c4d-5e6f-4a0b-9c8d-7e6f5a4b3c2d, application_client_secret: "${env.AZ_SECRET}", subscription_id: 9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a}
`

func TestCloudneeti_Contract(t *testing.T) {
	providertest.Run(t, providertest.Target{
		Kinds:   Kinds(),
		Secrets: map[string]string{"CN_KEY": apiKey, "CN_SECRET": appSecret, "AZ_SECRET": azureSecret},
		Creates: []providertest.Route{
			{Method: http.MethodPost, Path: "/onboarding/license/lic-test-1/account/aws"},
			{Method: http.MethodPost, Path: "/onboarding/license/lic-test-1/account/azure"},
		},
		Auth: []providertest.Route{{Method: http.MethodPost, Path: "/authorize/license/"}},
		// The public API has no offboarding call (Cloudneeti/Cloudneeti_SaaS_Docs
		// docs/userGuide; see Delete): destroy reports every account, sends nothing.
		CannotDelete: []string{Section},
		New: func(t *testing.T) *providertest.Fake {
			o := fakeOptions()
			o.JobDelay = 20 * time.Millisecond
			f := cnfake.New(o)
			return &providertest.Fake{
				Handler:  f,
				Injector: f.Faults,
				Plan:     func(base string) string { return fmt.Sprintf(cnContractPlan, base) },
				Check:    func() error { return cnContractCheck(f) },
				Snapshot: func() []string { return cnAccounts(f) },
			}
		},
	})
}

// cnAccounts lists the onboarded accounts by license and name, with their API
// scope.
func cnAccounts(f *cnfake.Server) []string {
	var out []string
	for lic, accs := range f.Snapshot().Accounts {
		for _, a := range accs {
			scope := append([]string(nil), a.Scope...)
			sort.Strings(scope)
			out = append(out, fmt.Sprintf("account %s/%s scope %v", lic, a.Name, scope))
		}
	}
	sort.Strings(out)
	return out
}

// cnContractCheck reads the fake's state: no duplicate, both accounts onboarded
// once and in the API application's scope, the AWS one rescanned.
func cnContractCheck(f *cnfake.Server) error {
	if err := f.Check(); err != nil {
		return err
	}
	accs := f.Snapshot().Accounts[license]
	got := map[string]bool{}
	for _, a := range accs {
		got[a.Name] = true
		scoped := false
		for _, app := range a.Scope {
			scoped = scoped || app == appID
		}
		if !scoped {
			return fmt.Errorf("account %s is not in the API scope of %s", a.Name, appID)
		}
		if a.Name == "acct-aws" && a.Rescans == 0 {
			return fmt.Errorf("account %s was never rescanned", a.Name)
		}
	}
	if len(accs) != 2 || !got["acct-aws"] || !got["acct-azure"] {
		return fmt.Errorf("accounts %v, want acct-aws and acct-azure", got)
	}
	return nil
}
