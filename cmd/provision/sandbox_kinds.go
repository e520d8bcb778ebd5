package main

import (
	"slices"

	"provision/providers/cloudneeti/cnfake"
	"provision/providers/edge/edgefake"
	"provision/providers/httpstep/httpfake"
	"provision/providers/nx/nxfake"
	"provision/providers/openvcloud/ovcfake"
	"provision/providers/sandbox"
)

// sandboxExtensions lists the fakes the sandbox serves, one extension per endpoint
// kind. An extension given in with replaces the one that serves the same kinds (a
// test's configured nxfake.Extension, say), or is added when none does.
func sandboxExtensions(with ...sandbox.Extension) []sandbox.Extension {
	all := []sandbox.Extension{httpfake.Extension{}, &nxfake.Extension{}, edgefake.Extension{}, ovcfake.Extension{}, cnfake.Extension{}}
	for _, w := range with {
		i := slices.IndexFunc(all, func(e sandbox.Extension) bool { return slices.Equal(e.Kinds(), w.Kinds()) })
		if i < 0 {
			all = append(all, w)
			continue
		}
		all[i] = w
	}
	return all
}
