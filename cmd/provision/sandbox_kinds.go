package main

import (
	"provision/providers/cloudneeti/cnfake"
	"provision/providers/edge/edgefake"
	"provision/providers/nx/nxfake"
	"provision/providers/openvcloud/ovcfake"
	"provision/providers/sandbox"
)

// sandboxExtensions lists the vendor fakes the sandbox can serve beyond "http".
func sandboxExtensions() []sandbox.Extension {
	return []sandbox.Extension{&nxfake.Extension{}, edgefake.Extension{}, ovcfake.Extension{}, cnfake.Extension{}}
}
