package main

import (
	"provision/providers"
	"provision/providers/cloudneeti"
	"provision/providers/edge"
	"provision/providers/httpstep"
	"provision/providers/milestone"
	"provision/providers/nx"
	"provision/providers/openvcloud"
)

// registry lists every plan section the binary knows.
func registry() *providers.Registry {
	var kinds []providers.Kind
	kinds = append(kinds, httpstep.Kinds()...)
	kinds = append(kinds, milestone.Kinds()...)
	kinds = append(kinds, nx.Kinds()...)
	kinds = append(kinds, edge.Kinds()...)
	kinds = append(kinds, openvcloud.Kinds()...)
	kinds = append(kinds, cloudneeti.Kinds()...)
	return providers.NewRegistry(kinds...)
}
