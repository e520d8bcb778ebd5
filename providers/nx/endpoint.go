package nx

import "provision/plan"

// endpointKind declares the nx-cloud endpoint kind: its auth is the cloud account
// (username and password for the cdb oauth2 password grant; type may only say
// oauth2-password) and an optional token scope. Source: API-NOTES.md section 1 and
// the nx-connect-system-to-cloud seed (POST /cdb/oauth2/token).
var endpointKind = plan.EndpointKind{Name: EndpointKind, Auth: []plan.AuthField{
	{Name: "type"},
	{Name: "username", Identity: "user"},
	{Name: "password", Secret: true},
	{Name: "scope"},
}}

// EndpointKinds implements providers.EndpointDeclarer.
func (*SystemKind) EndpointKinds() []plan.EndpointKind { return []plan.EndpointKind{endpointKind} }

// EndpointKinds implements providers.EndpointDeclarer.
func (*ShareKind) EndpointKinds() []plan.EndpointKind { return []plan.EndpointKind{endpointKind} }
