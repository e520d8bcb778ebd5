package main

import (
	"provision/providers/sandbox"
)

// sandboxExtensions lists the vendor fakes the sandbox can serve beyond "http".
func sandboxExtensions() []sandbox.Extension { return nil }
