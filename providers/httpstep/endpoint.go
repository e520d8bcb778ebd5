package httpstep

import (
	"provision/plan"
	"provision/providers"
)

// endpointKind declares the http endpoint kind: every common auth key, for the
// generic authenticators of providers/rest (none, basic, bearer, oauth2-password,
// oauth2-client-credentials).
var endpointKind = plan.EndpointKind{Name: EndpointKind, Auth: []plan.AuthField{
	{Name: "type"},
	{Name: "username", Identity: "user"},
	{Name: "password", Secret: true},
	{Name: "token", Secret: true},
	{Name: "client_id", Identity: "client_id"},
	{Name: "client_secret", Secret: true},
	{Name: "token_url"},
	{Name: "scope"},
}}

var _ providers.EndpointDeclarer = Kind{}

// EndpointKinds implements providers.EndpointDeclarer.
func (Kind) EndpointKinds() []plan.EndpointKind { return []plan.EndpointKind{endpointKind} }
