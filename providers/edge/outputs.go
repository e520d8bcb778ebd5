package edge

import "provision/plan"

// sectionOutputs are the outputs each edge section's task records (namespace of an
// app only when the server names one).
var sectionOutputs = map[string][]string{
	UsersSection:         {"user_id", "user", "status"},
	BusinessesSection:    {"business_id", "namespace", "status"},
	ClusterLabelsSection: {"label", "clusters", "labelled"},
	NodeLabelsSection:    {"label", "cluster", "labelled"},
	RepoUsersSection:     {"user", "existed"},
	RepoProjectsSection:  {"project_id", "project"},
	RegistriesSection:    {"repository_id"},
	AppsSection:          {"app_id", "app_name", "namespace"},
}

// Outputs implements providers.Kind.
func (k *Kind[T, P]) Outputs(*plan.Item) []string { return sectionOutputs[k.section] }
