package edge

import (
	"context"
	"fmt"
	"strings"

	"provision/providers"
	"provision/state"
)

// ClusterLabelSpec is one edge_cluster_labels item.
type ClusterLabelSpec struct {
	Endpoint string   `yaml:"endpoint" json:"endpoint"`
	Label    string   `yaml:"label" json:"label"`
	Clusters []string `yaml:"clusters" json:"clusters"`
}

func (s *ClusterLabelSpec) endpointName() string { return s.Endpoint }
func (s *ClusterLabelSpec) deps() []string       { return nil }

func (s *ClusterLabelSpec) check(c *checker) {
	if c.quiet {
		return
	}
	c.checkLabel("label", s.Label)
	c.checkNames("clusters", s.Clusters, "clusters")
}

// missing returns the clusters that do not carry the label yet.
func (s *ClusterLabelSpec) missing(ctx context.Context, k *Conn) ([]string, error) {
	var out []string
	for _, cl := range s.Clusters {
		labels, err := k.ClusterLabels(ctx, cl)
		if err != nil {
			return nil, err
		}
		if !contains(labels, s.Label) {
			out = append(out, cl)
		}
	}
	return out, nil
}

// apply: read each cluster's labels and label only the clusters that miss it
// (labels are never removed: a cluster dropped from the list keeps its label).
func (s *ClusterLabelSpec) apply(ctx context.Context, e *env, x *providers.Exec) (state.Outputs, error) {
	k := e.sysadmin()
	missing, err := s.missing(ctx, k)
	if err != nil {
		return nil, err
	}
	if aerr := x.Adopt(len(missing) == 0 && x.PriorValue("labelled") == "" && x.FirstLook()); aerr != nil {
		return nil, aerr
	}
	if len(missing) > 0 {
		// Intent first: destroy removes the label only where this task put it.
		if err := x.Checkpoint(outputs("labelled", joinNew(x.PriorValue("labelled"), missing))); err != nil {
			return nil, err
		}
		x.Log.Debug().Str("label", s.Label).Strs("clusters", missing).Msg("labelling clusters")
		if err := k.LabelClusters(ctx, s.Label, missing); err != nil {
			return nil, err
		}
	}
	return outputs("label", s.Label, "clusters", strings.Join(s.Clusters, ","), "labelled", x.PriorValue("labelled")), nil
}

func (s *ClusterLabelSpec) probe(ctx context.Context, e *env, _ *providers.Exec) (bool, string, error) {
	missing, err := s.missing(ctx, e.sysadmin())
	if err != nil {
		return false, "", err
	}
	if len(missing) > 0 {
		return false, fmt.Sprintf("label %s missing on %s", s.Label, strings.Join(missing, ", ")), nil
	}
	return true, fmt.Sprintf("label %s on every cluster", s.Label), nil
}

// NodeLabelSpec is one edge_node_labels item.
type NodeLabelSpec struct {
	Endpoint string   `yaml:"endpoint" json:"endpoint"`
	Label    string   `yaml:"label" json:"label"`
	Cluster  string   `yaml:"cluster" json:"cluster"`
	Nodes    []string `yaml:"nodes" json:"nodes"`
}

func (s *NodeLabelSpec) endpointName() string { return s.Endpoint }
func (s *NodeLabelSpec) deps() []string       { return nil }

func (s *NodeLabelSpec) check(c *checker) {
	if c.quiet {
		return
	}
	c.checkLabel("label", s.Label)
	c.required("cluster", s.Cluster)
	c.checkNames("nodes", s.Nodes, "nodes")
}

func (s *NodeLabelSpec) missing(ctx context.Context, k *Conn) ([]string, error) {
	labelled, err := k.Nodes(ctx, s.Cluster, s.Label)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, n := range labelled {
		// A server that ignores the filters would list other clusters' nodes.
		if n.Cluster == "" || n.Cluster == s.Cluster {
			have[n.Name] = true
		}
	}
	var out []string
	for _, n := range s.Nodes {
		if !have[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

// apply: list the cluster's nodes that carry the label and label only the others.
func (s *NodeLabelSpec) apply(ctx context.Context, e *env, x *providers.Exec) (state.Outputs, error) {
	k := e.sysadmin()
	missing, err := s.missing(ctx, k)
	if err != nil {
		return nil, err
	}
	if aerr := x.Adopt(len(missing) == 0 && x.PriorValue("labelled") == "" && x.FirstLook()); aerr != nil {
		return nil, aerr
	}
	if len(missing) > 0 {
		// Intent first: destroy removes the label only where this task put it.
		if err := x.Checkpoint(outputs("labelled", joinNew(x.PriorValue("labelled"), missing))); err != nil {
			return nil, err
		}
		x.Log.Debug().Str("label", s.Label).Str("cluster", s.Cluster).Strs("nodes", missing).Msg("labelling nodes")
		if err := k.LabelNodes(ctx, s.Cluster, s.Label, missing); err != nil {
			return nil, err
		}
	}
	return outputs("label", s.Label, "cluster", s.Cluster, "labelled", x.PriorValue("labelled")), nil
}

func (s *NodeLabelSpec) probe(ctx context.Context, e *env, _ *providers.Exec) (bool, string, error) {
	missing, err := s.missing(ctx, e.sysadmin())
	if err != nil {
		return false, "", err
	}
	if len(missing) > 0 {
		return false, fmt.Sprintf("label %s missing on %s/%s", s.Label, s.Cluster, strings.Join(missing, ", ")), nil
	}
	return true, fmt.Sprintf("label %s on every node", s.Label), nil
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}
