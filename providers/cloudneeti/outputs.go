package cloudneeti

import "provision/plan"

// Outputs implements providers.Kind: what an account task records.
func (AccountKind) Outputs(*plan.Item) []string {
	return []string{OutAccountID, OutJobID, OutRescanJobID, OutRescanStatus}
}
