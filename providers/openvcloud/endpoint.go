package openvcloud

import (
	"provision/plan"
	"provision/providers"
)

// endpointKind declares the openvcloud endpoint kind: ItsYou.online client
// credentials (client_id, client_secret, token_url) or a session login (username,
// password); type chooses between them. Source: the openvcloud-cloud-api seed and
// API-NOTES.md section 3 (auth A and B).
var endpointKind = plan.EndpointKind{Name: EndpointKind, Auth: []plan.AuthField{
	{Name: "type"},
	{Name: "username", Identity: "user"},
	{Name: "password", Secret: true},
	{Name: "client_id", Identity: "client_id"},
	{Name: "client_secret", Secret: true},
	{Name: "token_url"},
}}

var _ providers.EndpointDeclarer = CloudSpaceKind{}

// EndpointKinds implements providers.EndpointDeclarer.
func (CloudSpaceKind) EndpointKinds() []plan.EndpointKind { return []plan.EndpointKind{endpointKind} }
