package httpstep

import (
	"gopkg.in/yaml.v3"

	"provision/plan"
	"provision/providers"
)

// masks are the forms of an item's headers and body with every secret value (a
// scalar the plan tagged secret: ${env.X}, ${file.P}) replaced by "***", for what
// the state keeps of the spec. Headers and body are free-form, so plan.Secret
// cannot mark them; the plan's tags do.
type masks struct {
	set     bool
	headers map[string]string
	body    any
}

// maskSecrets records the masked forms of s's headers and body from the item's nodes.
func maskSecrets(item *plan.Item, s *Spec) {
	m := masks{set: true}
	if len(s.Headers) > 0 {
		m.headers = make(map[string]string, len(s.Headers))
		for k, v := range s.Headers {
			m.headers[k] = v
		}
		if n := providers.FieldNode(item.Fields, "headers"); n != nil && n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if hasSecret(n.Content[i+1]) {
					m.headers[n.Content[i].Value] = "***"
				}
			}
		}
	}
	m.body = s.Body
	if n := providers.FieldNode(item.Fields, "body"); n != nil && hasSecret(n) {
		var v any
		if err := maskedCopy(n).Decode(&v); err == nil {
			m.body = v
		} else {
			m.body = "***"
		}
	}
	s.masks = m
}

func hasSecret(n *yaml.Node) bool {
	if n == nil {
		return false
	}
	if n.Kind == yaml.ScalarNode && n.Tag == plan.SecretTag {
		return true
	}
	if n.Kind == yaml.AliasNode {
		return hasSecret(n.Alias)
	}
	for _, c := range n.Content {
		if hasSecret(c) {
			return true
		}
	}
	return false
}

// maskedCopy copies a node tree with secret scalars replaced by "***".
func maskedCopy(n *yaml.Node) *yaml.Node {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.AliasNode {
		return maskedCopy(n.Alias)
	}
	c := *n
	if n.Kind == yaml.ScalarNode && n.Tag == plan.SecretTag {
		c.Tag, c.Value, c.Style = "!!str", "***", 0
		return &c
	}
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, e := range n.Content {
		c.Content[i] = maskedCopy(e)
	}
	return &c
}

// MarshalYAML is the spec as the state keeps it (providers.SpecJSON): secret
// header and body values masked.
func (s Spec) MarshalYAML() (any, error) {
	type plain Spec
	c := plain(s)
	if s.masks.set {
		c.Headers, c.Body = s.masks.headers, s.masks.body
	}
	c.masks = masks{}
	return c, nil
}
