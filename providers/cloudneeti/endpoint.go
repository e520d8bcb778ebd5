package cloudneeti

import (
	"provision/plan"
	"provision/providers"
)

// The auth keys of a cloudneeti endpoint beyond the common ones (plan.Auth): the API
// portal subscription key (sent as Ocp-Apim-Subscription-Key), the license, and an
// account id that checkAuth refuses with the reason (the client asks for license and
// account tokens itself). Source: the cloudneeti-api-access seed and
// Cloudneeti_SaaS_Docs docs/userGuide/tokenAPI.md.
const (
	AuthAPIKey    = "api_key"
	AuthLicenseID = "license_id"
	AuthAccountID = "account_id"
)

// endpointKind declares the cloudneeti endpoint kind: its auth holds the API
// application (client_id, client_secret), the subscription key and the license. A
// state records the endpoint by application, license and account.
var endpointKind = plan.EndpointKind{Name: EndpointKind, Auth: []plan.AuthField{
	{Name: "type"},
	{Name: "client_id", Identity: "client_id"},
	{Name: "client_secret", Secret: true},
	{Name: AuthAPIKey, Secret: true},
	{Name: AuthLicenseID, Identity: "license"},
	{Name: AuthAccountID, Identity: "account"},
}}

var _ providers.EndpointDeclarer = AccountKind{}

// EndpointKinds implements providers.EndpointDeclarer.
func (AccountKind) EndpointKinds() []plan.EndpointKind { return []plan.EndpointKind{endpointKind} }
