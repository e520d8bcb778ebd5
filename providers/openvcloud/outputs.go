package openvcloud

import "provision/plan"

// Outputs implements providers.Kind: what a cloud space task records.
func (CloudSpaceKind) Outputs(*plan.Item) []string {
	return []string{OutCloudSpaceID, OutStatus, OutTaskGUID}
}
