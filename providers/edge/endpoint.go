package edge

import "provision/plan"

// endpointKind declares the edge endpoint kind: its auth is the system
// administrator's login (type may only say login). Source: the edge-vsm-r3-api seed
// (login) and API-NOTES.md section 5.
var endpointKind = plan.EndpointKind{Name: EndpointKind, Auth: []plan.AuthField{
	{Name: "type"},
	{Name: "username", Identity: "user"},
	{Name: "password", Secret: true},
}}

// EndpointKinds implements providers.EndpointDeclarer.
func (*Kind[T, P]) EndpointKinds() []plan.EndpointKind { return []plan.EndpointKind{endpointKind} }
