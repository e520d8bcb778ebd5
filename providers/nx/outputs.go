package nx

import "provision/plan"

// Outputs implements providers.Kind: what a system task records (auth_key is secret:
// kept in the state only with a state key).
func (*SystemKind) Outputs(*plan.Item) []string {
	return []string{"cloud_system_id", "auth_key", "owner", "server_local_id", "mode_used"}
}

// Outputs implements providers.Kind: what a share task records.
func (*ShareKind) Outputs(*plan.Item) []string {
	return []string{"email", "access_role", "cloud_system_id"}
}
